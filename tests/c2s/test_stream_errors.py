"""Misbehaving clients (RFC 6120 sections 4.9, 11 and 13.12; issue 4): malformed XML, an
oversize stanza, a DTD or entity declaration, comments and processing instructions, a
wrong stream or content namespace, an unhosted domain, bytes that are not UTF-8, and
clients that go silent half-way. Each must end with its stream error (and the closing
</stream:stream>, then the connection closed) or, for the silent ones, be closed after
the [c2s] idle_timeout -- while two other users keep chatting the whole time.

The raw client (xmppraw.py) sends the bad bytes at three points of a stream:
  plain   right after the first stream header, before TLS
  tls     after STARTTLS, not yet authenticated
  bound   logged in and bound
Conditions are those RFC 6120 prescribes; where it leaves a choice, the one fedgate
documents in src/xml/parser.h / src/xmpp/c2s.h (policy-violation for size limits)."""
import socket
import ssl
import threading
import time
from contextlib import contextmanager

import pytest

import xmppraw as xr
from xmppraw import RawClient, stream_header

ADDR = "127.0.0.63"
IDLE = 10  # [c2s] idle_timeout: the smallest the configuration accepts
MAX_STANZA = 10000
MAX_BUFFERED = 65536
SETTINGS = {"limits.max_stanza_size": MAX_STANZA, "c2s.idle_timeout": IDLE,
            "limits.max_buffered": MAX_BUFFERED}
USER_POOL = 30
STAGES = ["plain", "tls", "bound"]


class Chat:
    """Two users (their own raw connections, in a thread) exchanging messages in
    lock-step the whole module long: bob -> carol -> bob, every 50 ms, each message
    required within 5 s. A window() records the round trips done meanwhile."""

    def __init__(self, srv):
        self.srv = srv
        (bu, bp), (cu, cp) = srv.new_users(2)
        self.bob = xr.login(srv, bu, bp, resource="chat")
        self.carol = xr.login(srv, cu, cp, resource="chat")
        self.rounds = 0
        self.error = None
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                body = f"ping {i}"
                self.bob.send(xr.message(self.carol.jid, body))
                self.carol.wait_for(lambda e: _body(e) == body, 5, what=f"chat '{body}'")
                self.carol.send(xr.message(self.bob.jid, "re " + body))
                self.bob.wait_for(lambda e: _body(e) == "re " + body, 5,
                                  what=f"chat 're {body}'")
                self.rounds += 1
                time.sleep(0.05)
        except BaseException as e:  # noqa: BLE001 - reported by window()
            self.error = f"{time.strftime('%H:%M:%S')} {type(e).__name__}: {e}"

    @contextmanager
    def window(self):
        assert self.error is None, f"the chat had already failed: {self.error}"
        start = self.rounds
        t0 = time.monotonic()
        yield
        # the chat must go on during and after the test: two more round trips at least
        deadline = time.monotonic() + 10
        while self.rounds < start + 2 and self.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.error is None, f"other users' chat broke: {self.error}"
        assert self.rounds >= start + 2, (
            f"other users' chat stalled: {self.rounds - start} round trips in "
            f"{time.monotonic() - t0:.1f}s")

    def close(self):
        self.stop.set()
        self.t.join(10)
        self.bob.close()
        self.carol.close()


def _body(el):
    b = el.find(xr.q("body"))
    return b.text if b is not None else None


@pytest.fixture(scope="module")
def chat(srv):
    c = Chat(srv)
    yield c
    c.close()


def connect(srv, stage, user=None, pw=None):
    """A raw client at the given point of its stream."""
    c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)
    c.open()
    if stage in ("tls", "bound"):
        c.starttls()
    if stage == "bound":
        c.auth(user, pw, "SCRAM-SHA-1")
        c.open()
        c.bind("bad")
        c.send("<presence/>")
    return c


def prosody_differs(srv, why):
    """Prosody (used only to check these tests) behaves otherwise here: skip."""
    if srv.kind == "prosody":
        pytest.skip(f"Prosody 0.12: {why}")


def check_error(srv, chat, stage, payload, want, user=None, prosody_want=None):
    """Sends payload at stage; requires the stream error `want` (a condition or a set of
    acceptable ones), the connection closed after it, and the chat unharmed.
    prosody_want: what Prosody answers instead, when that differs."""
    if srv.kind == "prosody" and prosody_want:
        want = prosody_want
    if user is None and stage == "bound":
        user = srv.new_users(1)[0]
    with chat.window():
        c = connect(srv, stage, *(user or (None, None)))
        try:
            c.send(payload)
            cond, text = c.expect_stream_error(10)
            wants = {want} if isinstance(want, str) else set(want)
            assert cond in wants, f"stream error <{cond}/> ({text!r}), wanted {wants}; " \
                                  f"received: {c.transcript()}"
            assert c.closed_tag, f"no </stream:stream> after the stream error " \
                                 f"(RFC 6120 4.9.1.1): {c.transcript()}"
        finally:
            c.close()
    assert srv.alive(), f"{srv.kind} died; log:\n{srv.log_tail()}"
    return cond


# ---- malformed XML -------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
def test_mismatched_tags(srv, chat, stage):
    check_error(srv, chat, stage, "<message to='x@c2s.test'><body>hi</message>",
                "not-well-formed")


@pytest.mark.parametrize("stage", STAGES)
def test_garbage_bytes(srv, chat, stage):
    check_error(srv, chat, stage, "<<<this is not xml>>>", "not-well-formed")


def test_http_request_on_xmpp_port(srv, chat):
    """An HTTP client on the XMPP port: no stream header, not XML."""
    with chat.window():
        c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)
        try:
            c.send("GET / HTTP/1.1\r\nHost: c2s.test\r\n\r\n")
            cond, _ = c.expect_stream_error(10)
            assert cond == "not-well-formed", c.transcript()
        finally:
            c.close()


@pytest.mark.parametrize("stage", ["tls", "bound"])
def test_undeclared_prefix(srv, chat, stage):
    """RFC 6120 4.9.3.2: an element prefix that is not declared."""
    check_error(srv, chat, stage, "<foo:message><body/></foo:message>",
                {"bad-namespace-prefix", "not-well-formed"})


@pytest.mark.parametrize("stage", ["plain", "bound"])
def test_invalid_utf8(srv, chat, stage):
    """RFC 6120 11.6 / 4.9.3.22: bytes that are not UTF-8. fedgate documents
    unsupported-encoding; not-well-formed is what a plain XML parser reports."""
    cond = check_error(srv, chat, stage,
                       b"<message to='x@c2s.test'><body>\xff\xfe\xc0\xaf</body></message>",
                       {"unsupported-encoding", "not-well-formed"})
    if srv.kind == "fedgated":
        assert cond == "unsupported-encoding", "fedgate documents <unsupported-encoding/>"


# ---- restricted XML (RFC 6120 11.1) --------------------------------------------------------------
def test_dtd_with_entity_declaration_in_first_header(srv, chat):
    """A document type declaration with an internal subset (the 'billion laughs' door)
    before the stream header: <restricted-xml/>."""
    with chat.window():
        c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)
        try:
            c.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY a 'aaaaaaaa'>"
                   "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
                   + stream_header(srv.domain, xml_decl=False))
            cond, _ = c.expect_stream_error(10)
            assert cond == ("not-well-formed" if srv.kind == "prosody" else "restricted-xml"), \
                c.transcript()
        finally:
            c.close()


def test_dtd_in_restarted_stream_after_starttls(srv, chat):
    with chat.window():
        c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)
        try:
            c.open()
            c.send(f"<starttls xmlns='{xr.NS_TLS}'/>")
            assert c.next().tag == xr.q("proceed", xr.NS_TLS)
            c._wrap_tls()
            c.parser = xr.Parser()
            c.send("<!DOCTYPE stream:stream SYSTEM 'http://example.invalid/x.dtd'>"
                   + stream_header(srv.domain, xml_decl=False))
            cond, _ = c.expect_stream_error(10)
            assert cond == ("not-well-formed" if srv.kind == "prosody" else "restricted-xml"), \
                c.transcript()
        finally:
            c.close()


@pytest.mark.parametrize("stage", ["tls", "bound"])
def test_entity_reference(srv, chat, stage):
    """An entity reference other than the five predefined ones (11.1)."""
    cond = check_error(srv, chat, stage,
                       "<message to='x@c2s.test'><body>&xxe;</body></message>",
                       {"restricted-xml", "not-well-formed"})
    if srv.kind == "fedgated":
        assert cond == "restricted-xml", "fedgate documents <restricted-xml/>"


@pytest.mark.parametrize("stage", ["tls", "bound"])
def test_comment(srv, chat, stage):
    check_error(srv, chat, stage, "<!-- a comment -->", "restricted-xml",
                prosody_want="not-well-formed")


@pytest.mark.parametrize("stage", ["tls", "bound"])
def test_processing_instruction(srv, chat, stage):
    check_error(srv, chat, stage, "<?php echo 1; ?>", "restricted-xml",
                prosody_want="not-well-formed")


# ---- sizes ---------------------------------------------------------------------------------------
def test_stanza_under_the_limit_is_delivered(srv, chat):
    (u, p), = srv.new_users(1)
    with chat.window():
        c = connect(srv, "bound", u, p)
        try:
            body = "x" * (MAX_STANZA - 1000)
            c.send(xr.message(c.jid, body, mid="big-ok"))
            el = c.wait_for(lambda e: e.tag == xr.q("message") and e.get("id") == "big-ok",
                            10, what="the large message back")
            assert _body(el) == body
        finally:
            c.close()


@pytest.mark.parametrize("stage", ["tls", "bound"])
def test_oversize_stanza(srv, chat, stage):
    """[limits] max_stanza_size = 10000: a 20 kB stanza ends the stream with
    <policy-violation/> (RFC 6120 4.9.3.14 'a stanza exceeds a configured size limit';
    the condition fedgate documents)."""
    if stage == "bound":
        prosody_differs(srv, "closes an authenticated stream without a stream error")
    check_error(srv, chat, stage, xr.message(f"x@{srv.domain}", "A" * (2 * MAX_STANZA)),
                "policy-violation")


def test_oversize_stanza_without_end(srv, chat):
    """The same limit for a stanza that never ends: the server must not buffer on."""
    prosody_differs(srv, "closes an authenticated stream without a stream error")
    check_error(srv, chat, "bound", "<message><body>" + "B" * (3 * MAX_STANZA),
                "policy-violation")


@pytest.mark.fedgate_only("[limits] max_xml_depth")
def test_too_deep_nesting(srv, chat):
    """[limits] max_xml_depth (default 32): 100 nested elements -> <policy-violation/>."""
    check_error(srv, chat, "bound",
                "<message><body>x</body>" + "<a>" * 100 + "</a>" * 100 + "</message>",
                "policy-violation")


# ---- stream headers ------------------------------------------------------------------------------
def test_wrong_stream_namespace(srv, chat):
    """RFC 6120 4.8.1 / 4.9.3.10: <invalid-namespace/>."""
    with chat.window():
        c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)
        try:
            c.send(stream_header(srv.domain, stream_ns="http://example.com/not-streams"))
            cond, _ = c.expect_stream_error(10)
            assert cond == "invalid-namespace", c.transcript()
        finally:
            c.close()


def test_wrong_content_namespace(srv, chat):
    """RFC 6120 4.9.3.10: a default namespace other than jabber:client."""
    prosody_differs(srv, "ignores the header and times out")
    with chat.window():
        c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)
        try:
            c.send(stream_header(srv.domain, ns="urn:example:not-a-client"))
            cond, _ = c.expect_stream_error(10)
            assert cond == "invalid-namespace", c.transcript()
        finally:
            c.close()


@pytest.mark.parametrize("where", ["first", "after-starttls", "direct-tls"])
def test_unhosted_domain(srv, chat, where):
    """RFC 6120 4.9.3.6: 'to' names a domain the server does not serve: <host-unknown/>,
    sent after the server's own stream header."""
    with chat.window():
        direct = where == "direct-tls"
        c = RawClient(srv.host, srv.tls_port if direct else srv.port, srv.domain, srv.ca,
                      direct_tls=direct, timeout=10)
        try:
            if where == "after-starttls":
                c.open()
                c.send(f"<starttls xmlns='{xr.NS_TLS}'/>")
                assert c.next().tag == xr.q("proceed", xr.NS_TLS)
                c._wrap_tls()
                c.parser = xr.Parser()
            c.send(stream_header("unhosted.example"))
            cond, _ = c.expect_stream_error(10)
            if srv.kind == "prosody" and where == "after-starttls":
                assert cond == "not-authorized", c.transcript()  # 'to' changed on restart
            else:
                assert cond == "host-unknown", c.transcript()
            assert c.header is not None, "stream error sent without the server's stream header"
        finally:
            c.close()


# ---- silent clients ------------------------------------------------------------------------------
def test_silent_and_half_open_connections_are_closed(srv, chat):
    """Clients that stop in the middle are closed by the server after [c2s]
    idle_timeout (10 s here) -- the only configuration key that applies: half a stream
    header, nothing at all, a TLS port without a handshake, half a header under TLS.
    Meanwhile the chat goes on. If the server wrote anything before closing, it is a
    stream error (fedgate: <connection-timeout/>)."""
    limit = IDLE + 15  # the idle timeout, plus the server's timer granularity and slack
    with chat.window():
        half = stream_header(srv.domain)[:60]
        conns = {}
        s = socket.create_connection((srv.host, srv.port), timeout=5)
        s.sendall(half.encode())
        conns["half header"] = s
        conns["nothing sent"] = socket.create_connection((srv.host, srv.port), timeout=5)
        if srv.kind != "prosody":  # Prosody 0.12 never times out a TLS handshake
            conns["tls port, no handshake"] = socket.create_connection(
                (srv.host, srv.tls_port), timeout=5)
        t = xr.tls_context(srv.ca).wrap_socket(
            socket.create_connection((srv.host, srv.tls_port), timeout=5),
            server_hostname=srv.domain)
        t.sendall(half.encode())
        conns["half header under TLS"] = t
        t0 = time.monotonic()
        closed, got = {}, {k: b"" for k in conns}
        while len(closed) < len(conns) and time.monotonic() - t0 < limit:
            for name, sock in conns.items():
                if name in closed:
                    continue
                sock.settimeout(0.05)
                try:
                    data = sock.recv(4096)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                except (ConnectionResetError, ssl.SSLError, OSError):
                    data = b""
                if data:
                    got[name] += data
                else:
                    closed[name] = time.monotonic() - t0
        for sock in conns.values():
            sock.close()
        still_open = [n for n in conns if n not in closed]
        assert not still_open, (f"still open after {limit}s: {still_open}; closed: {closed}; "
                                f"server sent: {got}")
        for name, data in got.items():
            if data:
                assert b"error" in data and b"</stream:stream>" in data, \
                    f"{name}: closed without a stream error: {data!r}"
                if srv.kind == "fedgated" and b"xmpp-streams" in data:
                    assert b"connection-timeout" in data, f"{name}: {data!r}"
        print(f"closed after: { {k: round(v, 1) for k, v in closed.items()} }")


@pytest.mark.fedgate_only("idle pings (XEP-0199) of bound sessions")
def test_idle_bound_client_is_pinged_then_closed(srv, chat):
    """Issue 4: a bound client silent for idle_timeout gets a ping; if it does not
    answer within the grace period (min(30 s, idle_timeout)) the stream ends with
    <connection-timeout/>. A client that answers stays."""
    (u, p), (u2, p2) = srv.new_users(2)
    with chat.window():
        mute = connect(srv, "bound", u, p)
        mute.answer_pings = False
        polite = connect(srv, "bound", u2, p2)  # answers pings (RawClient default)
        stop = threading.Event()
        polite_err = []

        def serve_polite():  # keeps reading, so that its pings get answered
            while not stop.is_set():
                try:
                    polite.next(0.2)
                except TimeoutError:
                    pass
                except Exception as e:  # noqa: BLE001
                    polite_err.append(repr(e))
                    return
        th = threading.Thread(target=serve_polite, daemon=True)
        th.start()
        try:
            t0 = time.monotonic()
            ping = mute.wait_for(lambda e: e.tag == xr.q("iq") and e.get("type") == "get"
                                 and e.find(xr.q("ping", xr.NS_PING)) is not None,
                                 IDLE + 10, what="the server's ping")
            t_ping = time.monotonic() - t0
            assert t_ping >= IDLE - 1, f"pinged after {t_ping:.1f}s, before idle_timeout"
            cond, _ = mute.expect_stream_error(IDLE + 10)
            assert cond == "connection-timeout", mute.transcript()
            # the polite client answered its ping and is still there
            stop.set()
            th.join(5)
            assert not polite_err, f"the client that answered pings was dropped: {polite_err}"
            polite.send(f"<iq type='get' id='still' to='{srv.domain}'>"
                        f"<ping xmlns='{xr.NS_PING}'/></iq>")
            r = polite.wait_for(lambda e: e.get("id") == "still", 5, what="ping answer")
            assert r.get("type") == "result"
        finally:
            stop.set()
            th.join(5)
            mute.close()
            polite.close()


# ---- a client that does not read -----------------------------------------------------------------
@pytest.mark.fedgate_only("[limits] max_buffered")
def test_slow_reader_is_dropped_sender_unharmed(srv, chat):
    """[limits] max_buffered = 64 KiB: a client that stops reading while another floods
    it with 6 MB of messages is disconnected once its unsent data passes the limit;
    the sender is never stalled (the server keeps reading it), stays connected, and the
    chat goes on."""
    (vu, vp), (fu, fp) = srv.new_users(2)
    with chat.window():
        victim = xr.login(srv, vu, vp, resource="slow", rcvbuf=4096)
        flooder = xr.login(srv, fu, fp, resource="flood", timeout=20)
        try:
            body = "F" * 8000
            chunk = "".join(xr.message(victim.jid, body, mtype="headline") for _ in range(20))
            t0 = time.monotonic()
            try:
                for _ in range(40):  # 40 x 20 x 8 kB = 6.4 MB
                    flooder.send(chunk)
            except (socket.timeout, TimeoutError):
                raise AssertionError(f"the server stopped reading the sender for 20 s "
                                     f"after {time.monotonic() - t0:.1f}s: one slow reader "
                                     f"stalls others") from None
            # the sender is still served
            flooder.send(f"<iq type='get' id='after-flood' to='{srv.domain}'>"
                         f"<ping xmlns='{xr.NS_PING}'/></iq>")
            r = flooder.wait_for(lambda e: e.get("id") == "after-flood", 15,
                                 what="ping answer after the flood")
            assert r.get("type") == "result"
            # the victim's connection has been dropped: draining it ends in EOF
            victim.sock.settimeout(15)
            deadline = time.monotonic() + 15
            total = 0
            while time.monotonic() < deadline:
                try:
                    data = victim.sock.recv(1 << 20)
                except (ConnectionResetError, ssl.SSLError, OSError):
                    data = b""
                if not data:
                    break
                total += len(data)
            else:
                raise AssertionError("the slow reader was not disconnected")
            assert total < 6_000_000, f"the slow reader got {total} bytes: nothing was dropped"
            print(f"slow reader got {total} bytes before the server dropped it")
        finally:
            victim.close()
            flooder.close()
    assert srv.alive(), f"{srv.kind} died; log:\n{srv.log_tail()}"
