"""A small raw XMPP client for the c2s tests, written from RFC 6120 (streams, STARTTLS,
SASL, binding), RFC 5802 / RFC 7677 (SCRAM-SHA-1 / -256), RFC 4616 (PLAIN) and XEP-0199
(answers the server's pings). It is deliberately independent of fedgate's code and of
slixmpp, so that it can send what a normal client never would (malformed XML, a DTD,
half a stream header) and see exactly what comes back.

Two flavours:
  RawClient   blocking (socket + ssl), every read bounded by a timeout; used by the
              stream-error tests and the chatters that run beside them.
  AsyncClient asyncio streams, for the many-clients load test.

Both parse the server's output with expat (xml.etree.ElementTree.XMLPullParser): depth 1
is the stream header, depth 2 a complete stanza or nonza."""
import asyncio
import base64
import hashlib
import hmac
import os
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"
NS_DELAY = "urn:xmpp:delay"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"


def q(tag, ns=NS_CLIENT):
    return f"{{{ns}}}{tag}"


def stream_header(to, ns=NS_CLIENT, stream_ns=NS_STREAM, version="1.0", xml_decl=True,
                  extra=""):
    decl = "<?xml version='1.0'?>" if xml_decl else ""
    to_attr = f" to={quoteattr(to)}" if to is not None else ""
    ver = f" version={quoteattr(version)}" if version is not None else ""
    return (f"{decl}<stream:stream xmlns={quoteattr(ns)} xmlns:stream={quoteattr(stream_ns)}"
            f"{to_attr}{ver} xml:lang='en'{extra}>")


def message(to, body, mtype="chat", mid=None):
    idattr = f" id={quoteattr(mid)}" if mid else ""
    return (f"<message to={quoteattr(to)} type={quoteattr(mtype)}{idattr}>"
            f"<body>{escape(body)}</body></message>")


# ---- SASL ------------------------------------------------------------------------------------
def _saslname(s):
    return s.replace("=", "=3D").replace(",", "=2C")


class Scram:
    """Client side of SCRAM-SHA-1 / SCRAM-SHA-256 without channel binding (gs2 'n,,')."""

    def __init__(self, user, password, hashname="SHA-1", gs2="n,,", cbind_gs2=None):
        self.hash = {"SHA-1": "sha1", "SHA-256": "sha256"}[hashname]
        self.mech = "SCRAM-" + hashname
        self.user = user
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.gs2 = gs2  # e.g. "y,," (client could bind but thinks the server cannot)
        self.cbind_gs2 = cbind_gs2 if cbind_gs2 is not None else gs2  # what c= carries
        self.first_bare = f"n={_saslname(user)},r={self.nonce}"
        self.server_sig = None
        self.iterations = None

    def first(self):
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes, salted_cache=None):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise AssertionError(f"server nonce does not extend ours: {sf!r}")
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        self.iterations = iters
        key = (self.hash, self.password, salt, iters)
        salted = salted_cache.get(key) if salted_cache is not None else None
        if salted is None:
            salted = hashlib.pbkdf2_hmac(self.hash, self.password.encode(), salt, iters)
            if salted_cache is not None:
                salted_cache[key] = salted
        ck = hmac.new(salted, b"Client Key", self.hash).digest()
        stored = hashlib.new(self.hash, ck).digest()
        without_proof = ("c=" + base64.b64encode(self.cbind_gs2.encode()).decode()
                         + ",r=" + attrs["r"])
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        sk = hmac.new(salted, b"Server Key", self.hash).digest()
        self.server_sig = hmac.new(sk, auth_msg, self.hash).digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final: bytes):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        if "v" not in attrs:
            raise AssertionError(f"no server signature in {server_final!r}")
        if base64.b64decode(attrs["v"]) != self.server_sig:
            raise AssertionError("server signature does not verify (mutual auth failed)")


def plain_initial(user, password):
    return b"\0" + user.encode() + b"\0" + password.encode()


def b64(data: bytes):
    return base64.b64encode(data).decode() or "="


def unb64(text):
    text = (text or "").strip()
    if text in ("", "="):
        return b""
    return base64.b64decode(text)


# ---- errors ----------------------------------------------------------------------------------
class StreamClosed(Exception):
    """The server closed the stream or the connection."""


class StreamError(Exception):
    def __init__(self, condition, text, transcript):
        super().__init__(f"stream error <{condition}/> {text!r}; received: {transcript}")
        self.condition = condition
        self.text = text


class AuthFailed(Exception):
    def __init__(self, condition, text, step):
        super().__init__(f"SASL failure <{condition}/> {text!r} at step {step}")
        self.condition = condition
        self.text = text
        self.step = step


def stream_error_condition(el):
    cond, text = None, None
    for c in el:
        if c.tag == q("text", NS_STREAMS_ERR):
            text = c.text
        elif c.tag.startswith("{" + NS_STREAMS_ERR + "}"):
            cond = c.tag.split("}", 1)[1]
    return cond, text


def sasl_failure_condition(el):
    cond, text = None, None
    for c in el:
        if c.tag == q("text", NS_SASL):
            text = c.text
        else:
            cond = c.tag.split("}", 1)[1]
    return cond, text


def stanza_error_condition(el):
    """(type, condition) of a stanza's <error/>, or None."""
    err = el.find(q("error"))
    if err is None:
        return None
    cond = None
    for c in err:
        if c.tag.startswith("{" + NS_STANZAS_ERR + "}") and not c.tag.endswith("}text"):
            cond = c.tag.split("}", 1)[1]
    return err.get("type"), cond


class Parser:
    """Feeds server bytes to expat and yields ('header', attrib), ('el', element),
    ('close', None) events."""

    def __init__(self):
        self.p = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None

    def feed(self, data):
        self.p.feed(data)
        out = []
        for ev, el in self.p.read_events():
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.root = el
                    out.append(("header", el))
            else:
                self.depth -= 1
                if self.depth == 1:
                    out.append(("el", el))
                    self.root.remove(el)
                elif self.depth == 0:
                    out.append(("close", None))
        return out


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = True
    return ctx


# ---- blocking client -------------------------------------------------------------------------
class RawClient:
    """One connection. Every method that reads takes a timeout (seconds) and raises
    TimeoutError when it expires, StreamClosed on EOF, StreamError on a stream error."""

    def __init__(self, host, port, domain, ca, direct_tls=False, timeout=10.0,
                 answer_pings=True, rcvbuf=None, tls_max=None):
        self.host, self.port, self.domain, self.ca = host, port, domain, ca
        self.tls_max = tls_max  # e.g. ssl.TLSVersion.TLSv1_2
        self.timeout = timeout
        self.answer_pings = answer_pings
        if rcvbuf:  # a small receive window: a client that reads slowly
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = False
        if direct_tls:
            self._wrap_tls()
        self.parser = Parser()
        self.pending = []
        self.received = bytearray()  # everything the server sent (decrypted), for messages
        self.header = None
        self.features = None
        self.eof = False
        self.closed_tag = False  # the server sent </stream:stream>
        self.jid = None
        self.eof_reason = None

    # -- plumbing --
    def _wrap_tls(self):
        ctx = tls_context(self.ca)
        if self.tls_max is not None:
            ctx.maximum_version = self.tls_max
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True

    def transcript(self, limit=1500):
        t = bytes(self.received)
        if len(t) > limit:
            t = t[:300] + b" ... " + t[-(limit - 300):]
        return t.decode("utf-8", "replace")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _recv_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing from the server in time; received so far: "
                               f"{self.transcript()}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise TimeoutError(f"nothing from the server in time; received so far: "
                               f"{self.transcript()}") from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
            data = b""
            self.eof_reason = repr(e)
        except ssl.SSLError as e:
            data = b""
            self.eof_reason = repr(e)
        except ConnectionResetError as e:
            data = b""
            self.eof_reason = "connection reset (RST)"
        if not data:
            self.eof = True
            return
        self.received += data
        try:
            self.pending.extend(self.parser.feed(data))
        except ET.ParseError as e:
            raise AssertionError(f"the server sent XML that does not parse ({e}): "
                                 f"{self.transcript()}") from None

    def next_event(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.pending:
            if self.eof:
                raise StreamClosed(f"connection closed ({self.eof_reason or 'EOF'}); "
                                   f"received: {self.transcript()}")
            self._recv_some(deadline)
        return self.pending.pop(0)

    def next(self, timeout=None):
        """The next first-level element; stream errors raise StreamError, the server's
        </stream:stream> or EOF raise StreamClosed. Server pings are answered."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            ev, el = self.next_event(max(0.0, deadline - time.monotonic()))
            if ev == "header":
                self.header = el
                continue
            if ev == "close":
                self.closed_tag = True
                raise StreamClosed(f"the server closed the stream; received: "
                                   f"{self.transcript()}")
            if el.tag == q("error", NS_STREAM):
                cond, text = stream_error_condition(el)
                raise StreamError(cond, text, self.transcript())
            if (self.answer_pings and el.tag == q("iq") and el.get("type") == "get"
                    and el.find(q("ping", NS_PING)) is not None):
                self.send(f"<iq type='result' id={quoteattr(el.get('id', ''))}"
                          f" to={quoteattr(el.get('from') or self.domain)}/>")
                continue
            return el

    def wait_for(self, pred, timeout=None, what="an element"):
        """Reads until pred(el); returns el. Elements that do not match are dropped."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} in time; received: {self.transcript()}")
            el = self.next(remaining)
            if pred(el):
                return el

    def expect_stream_error(self, timeout=10.0):
        """Reads until a stream error; returns (condition, text). Then requires that the
        connection ends (EOF) within the same timeout, and notes whether the server sent
        its closing </stream:stream> (RFC 6120 4.9.1.1)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.next(max(0.0, deadline - time.monotonic()))
            except StreamError as e:
                cond, text = e.condition, e.text
                break
            except StreamClosed:
                raise AssertionError(f"the stream ended without a stream error "
                                     f"({self.eof_reason or 'EOF'}); received: "
                                     f"{self.transcript()}") from None
        self.wait_eof(max(0.5, deadline - time.monotonic()))
        return cond, text

    def wait_eof(self, timeout):
        """Waits until the server closes the connection (consuming anything it sends)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._recv_some(deadline)
            except TimeoutError:
                raise AssertionError(f"the server did not close the connection within "
                                     f"{timeout:.1f}s; received: {self.transcript()}") from None
            except AssertionError:
                # unparseable trailing bytes: keep reading raw until EOF
                self.parser = Parser()
            for ev, _ in self.pending:
                if ev == "close":
                    self.closed_tag = True
            self.pending = []

    def close(self):
        try:
            if not self.eof:
                self.sock.settimeout(1.0)
                try:
                    self.sock.sendall(b"</stream:stream>")
                except OSError:
                    pass
            self.sock.close()
        except OSError:
            pass

    # -- negotiation --
    def open(self, to=None, **kw):
        """Sends a stream header (for a fresh or restarted stream) and returns the
        <stream:features/> element."""
        self.parser = Parser()
        self.pending = []
        self.send(stream_header(self.domain if to is None else to, **kw))
        self.features = self.wait_for(lambda e: e.tag == q("features", NS_STREAM),
                                      what="<stream:features/>")
        return self.features

    def mechanisms(self):
        m = self.features.find(q("mechanisms", NS_SASL)) if self.features is not None else None
        return [x.text for x in m] if m is not None else []

    def starttls(self):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        el = self.next()
        if el.tag != q("proceed", NS_TLS):
            raise AssertionError(f"STARTTLS answered with {el.tag}: {self.transcript()}")
        self._wrap_tls()
        return self.open()

    def auth(self, user, password, mech="SCRAM-SHA-1", authzid="", scram=None):
        """Runs one SASL exchange; returns normally on success (stream not yet restarted),
        raises AuthFailed (with the step at which the failure came) otherwise. scram: a
        prepared Scram object (to send unusual gs2 headers)."""
        if mech == "PLAIN":
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
                      f"{b64(authzid.encode() + plain_initial(user, password))}</auth>")
            el = self.next()
            if el.tag == q("success", NS_SASL):
                return
            if el.tag == q("failure", NS_SASL):
                raise AuthFailed(*sasl_failure_condition(el), step="auth")
            raise AssertionError(f"unexpected answer to <auth/>: {self.transcript()}")
        s = scram or Scram(user, password, mech[len("SCRAM-"):])
        self.last_scram = s
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{b64(s.first())}</auth>")
        el = self.next()
        if el.tag == q("failure", NS_SASL):
            raise AuthFailed(*sasl_failure_condition(el), step="client-first")
        if el.tag != q("challenge", NS_SASL):
            raise AssertionError(f"unexpected answer to <auth/>: {self.transcript()}")
        self.send(f"<response xmlns='{NS_SASL}'>{b64(s.final(unb64(el.text)))}</response>")
        el = self.next()
        if el.tag == q("failure", NS_SASL):
            raise AuthFailed(*sasl_failure_condition(el), step="client-final")
        if el.tag == q("challenge", NS_SASL):  # server-final as a challenge (RFC 6120 6.3.10)
            s.verify(unb64(el.text))
            self.send(f"<response xmlns='{NS_SASL}'/>")
            el = self.next()
            if el.tag != q("success", NS_SASL):
                raise AssertionError(f"no <success/> after server-final: {self.transcript()}")
            return
        if el.tag != q("success", NS_SASL):
            raise AssertionError(f"unexpected answer to <response/>: {self.transcript()}")
        s.verify(unb64(el.text))

    def bind(self, resource=None):
        inner = f"<resource>{escape(resource)}</resource>" if resource else ""
        self.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")
        el = self.wait_for(lambda e: e.tag == q("iq") and e.get("id") == "bind1",
                           what="bind result")
        if el.get("type") != "result":
            raise AssertionError(f"bind failed: {self.transcript()}")
        self.jid = el.find(f"{q('bind', NS_BIND)}/{q('jid', NS_BIND)}").text
        if self.features is not None and self.features.find(q("session", NS_SESSION)) is not None:
            sess = self.features.find(q("session", NS_SESSION))
            if sess.find(q("optional", NS_SESSION)) is None:
                self.send(f"<iq type='set' id='sess1'><session xmlns='{NS_SESSION}'/></iq>")
                self.wait_for(lambda e: e.tag == q("iq") and e.get("id") == "sess1",
                              what="session result")
        return self.jid

    def login(self, user, password, mech="SCRAM-SHA-1", resource=None, starttls=True,
              presence=True):
        """Stream, STARTTLS (unless direct TLS or starttls=False), SASL, restart, bind,
        and initial presence. Returns the full JID."""
        self.open()
        if starttls and not self.tls:
            self.starttls()
        self.auth(user, password, mech)
        self.open()
        jid = self.bind(resource)
        if presence:
            self.send("<presence/>")
        return jid


def login(srv, user, password, resource=None, mech="SCRAM-SHA-1", **kw):
    c = RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=kw.pop("timeout", 10.0),
                  rcvbuf=kw.pop("rcvbuf", None))
    try:
        c.login(user, password, mech=mech, resource=resource, **kw)
    except BaseException:
        c.close()
        raise
    return c


# ---- asyncio client (load test) --------------------------------------------------------------
class AsyncClient:
    """Plain TCP (or STARTTLS when ssl_ctx is given), SCRAM, bind, presence; then counts
    the chat messages it receives."""

    def __init__(self, host, port, domain, ssl_ctx=None):
        self.host, self.port, self.domain, self.ssl_ctx = host, port, domain, ssl_ctx
        self.reader = self.writer = None
        self.parser = Parser()
        self.pending = []
        self.jid = None
        self.bodies = []
        self.got = asyncio.Event()
        self.expect = 0
        self.error = None
        self.reader_task = None

    async def _next(self):
        while not self.pending:
            data = await self.reader.read(65536)
            if not data:
                raise StreamClosed(f"{self.jid}: connection closed")
            self.pending.extend(self.parser.feed(data))
        ev, el = self.pending.pop(0)
        if ev == "close":
            raise StreamClosed(f"{self.jid}: stream closed")
        if ev == "el" and el.tag == q("error", NS_STREAM):
            cond, text = stream_error_condition(el)
            raise StreamError(cond, text, "")
        return ev, el

    async def _el(self, tag):
        while True:
            ev, el = await self._next()
            if ev == "el":
                if el.tag != tag:
                    raise AssertionError(f"expected {tag}, got {el.tag}")
                return el

    def _send(self, s):
        self.writer.write(s.encode())

    async def _open(self):
        self.parser = Parser()
        self.pending = []
        self._send(stream_header(self.domain))
        return await self._el(q("features", NS_STREAM))

    async def login(self, user, password, resource, salted_cache=None, mech="SCRAM-SHA-1"):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        feats = await self._open()
        if self.ssl_ctx is not None:
            self._send(f"<starttls xmlns='{NS_TLS}'/>")
            await self._el(q("proceed", NS_TLS))
            await self.writer.start_tls(self.ssl_ctx, server_hostname=self.domain)
            feats = await self._open()
        s = Scram(user, password, mech[len("SCRAM-"):])
        self._send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{b64(s.first())}</auth>")
        ch = await self._el(q("challenge", NS_SASL))
        self._send(f"<response xmlns='{NS_SASL}'>"
                   f"{b64(s.final(unb64(ch.text), salted_cache))}</response>")
        ok = await self._el(q("success", NS_SASL))
        s.verify(unb64(ok.text))
        feats = await self._open()
        self._send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>{resource}"
                   f"</resource></bind></iq>")
        res = await self._el(q("iq"))
        if res.get("type") != "result":
            raise AssertionError(f"bind failed for {user}")
        self.jid = res.find(f"{q('bind', NS_BIND)}/{q('jid', NS_BIND)}").text
        sess = feats.find(q("session", NS_SESSION))
        if sess is not None and sess.find(q("optional", NS_SESSION)) is None:
            self._send(f"<iq type='set' id='s'><session xmlns='{NS_SESSION}'/></iq>")
            await self._el(q("iq"))
        self._send("<presence/>")
        await self.writer.drain()
        return self.jid

    def start_reading(self):
        self.reader_task = asyncio.ensure_future(self._read_loop())

    async def _read_loop(self):
        try:
            while True:
                ev, el = await self._next()
                if ev != "el":
                    continue
                if el.tag == q("message"):
                    b = el.find(q("body"))
                    if el.get("type") == "error":
                        self.error = f"error message: {ET.tostring(el)[:300]!r}"
                    elif b is not None:
                        self.bodies.append(b.text)
                        if len(self.bodies) >= self.expect:
                            self.got.set()
                elif (el.tag == q("iq") and el.get("type") == "get"
                      and el.find(q("ping", NS_PING)) is not None):
                    self._send(f"<iq type='result' id={quoteattr(el.get('id', ''))}/>")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded, reported by the test
            self.error = f"{type(e).__name__}: {e}"
            self.got.set()

    async def close(self):
        if self.reader_task:
            self.reader_task.cancel()
            try:
                await self.reader_task
            except (asyncio.CancelledError, Exception):
                pass
        if self.writer is not None:
            try:
                self.writer.write(b"</stream:stream>")
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except Exception:
                pass
