"""python3-slixmpp clients for the c2s tests, with every wait bounded.

A test gets a Harness (fixture `xmpp`): it owns a fresh asyncio loop, logs clients in
and, at teardown, disconnects them with bounded waits. Tests are ordinary functions that
call `xmpp.run(coro, timeout)`.

Each Client records what it receives in per-kind inboxes ('message', 'presence',
'roster_push', 'iq', 'stream_error') through raw XPath handlers, so a test sees every
stanza exactly as the server sent it, whatever slixmpp's plugins also do with it."""
import asyncio
import logging
from pathlib import Path

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

log = logging.getLogger("c2s-tests")

DEFAULT_TIMEOUT = 10.0


class LoginFailed(AssertionError):
    pass


class Client(slixmpp.ClientXMPP):
    def __init__(self, harness, jid, password, mechs=None):
        super().__init__(jid, password)
        self.harness = harness
        self.ca_certs = Path(harness.srv.ca)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0203")
        if mechs:
            self["feature_mechanisms"].use_mechs = list(mechs)
        # The tests answer subscription requests themselves.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.inbox = {k: [] for k in ("message", "presence", "roster_push", "stream_error")}
        self.history = []  # (kind, str(stanza)) for failure messages
        self._changed = asyncio.Event()
        self.failed_auths = []
        self.mech_used = None
        self.session = asyncio.get_event_loop().create_future()
        self.gone = asyncio.Event()
        self.register_handler(Callback("t-msg", MatchXPath("{jabber:client}message"),
                                       lambda s: self._got("message", s)))
        self.register_handler(Callback("t-pres", MatchXPath("{jabber:client}presence"),
                                       lambda s: self._got("presence", s)))
        # roster pushes only (slixmpp also fires roster_update for the roster result)
        self.add_event_handler("roster_update", lambda s: self._got("roster_push", s)
                               if s["type"] == "set" else None)
        self.add_event_handler("stream_error", lambda s: self._got("stream_error", s))
        self.add_event_handler("session_start", self._on_session)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _: self._fail("all SASL mechanisms failed"))
        self.add_event_handler("no_auth", lambda _: self._fail("no usable SASL mechanism"))
        self.add_event_handler("connection_failed", self._on_conn_failed)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("auth_success", self._on_auth_success)

    # -- events --
    def _got(self, kind, stanza):
        self.inbox[kind].append(stanza)
        self.history.append((kind, str(stanza)))
        self._changed.set()

    def _on_session(self, _):
        if not self.session.done():
            self.session.set_result(True)

    def _on_auth_success(self, _):
        mech = self["feature_mechanisms"].mech
        self.mech_used = mech.name if mech is not None else None

    def _on_failed_auth(self, stanza):
        self.failed_auths.append((stanza["condition"], stanza["text"]))
        self._changed.set()

    def _fail(self, why):
        if not self.session.done():
            self.session.set_exception(LoginFailed(f"{self.boundjid}: {why}; failures: "
                                                   f"{self.failed_auths}"))

    def _on_conn_failed(self, err):
        self.cancel_connection_attempt()  # no retry loop in tests
        self._fail(f"connection failed: {err}")

    def _on_disconnected(self, reason):
        self.gone.set()
        self._changed.set()
        self._fail(f"disconnected before the session started ({reason}); "
                   f"stream errors: {[str(e) for e in self.inbox['stream_error']]}")

    # -- waiting --
    async def wait(self, kind, pred=lambda s: True, timeout=DEFAULT_TIMEOUT, what=None):
        """Returns (and removes from the inbox) the first stanza of that kind satisfying
        pred, waiting at most timeout seconds."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while True:
            box = self.inbox[kind]
            for i, s in enumerate(box):
                if pred(s):
                    del box[i]
                    return s
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = "\n  ".join(x for k, x in self.history if k == kind) or "(none)"
                raise AssertionError(f"{self.boundjid}: no {what or kind} within {timeout}s; "
                                     f"{kind} stanzas received:\n  {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def wait_message(self, body=None, frm=None, mtype=None, timeout=DEFAULT_TIMEOUT):
        def pred(m):
            return ((body is None or m["body"] == body)
                    and (frm is None or str(m["from"]) == str(frm))
                    and (mtype is None or m["type"] == mtype))
        return await self.wait("message", pred, timeout,
                               what=f"message body={body!r} from={frm} type={mtype}")

    async def wait_presence(self, frm=None, ptype=None, pred=None, timeout=DEFAULT_TIMEOUT,
                            what=None):
        def p(s):
            if frm is not None:
                f = s["from"]
                if "/" in str(frm):
                    if str(f) != str(frm):
                        return False
                elif f.bare != str(frm):
                    return False
            if ptype is not None and s["type"] != ptype:
                return False
            return pred is None or pred(s)
        return await self.wait("presence", p, timeout,
                               what=what or f"presence from={frm} type={ptype}")

    async def wait_gone(self, timeout=DEFAULT_TIMEOUT):
        try:
            await asyncio.wait_for(self.gone.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.boundjid}: still connected after {timeout}s") from None

    async def iq(self, to, xml_payload, itype="get", timeout=DEFAULT_TIMEOUT):
        """Sends an iq with a raw payload; returns the answer (result or error) without
        raising on type=error."""
        iq = self.Iq()
        iq["type"] = itype
        if to:
            iq["to"] = to
        from slixmpp.xmlstream import ET
        iq.append(ET.fromstring(xml_payload))
        try:
            return await iq.send(timeout=timeout)
        except slixmpp.exceptions.IqError as e:
            return e.iq
        except slixmpp.exceptions.IqTimeout:
            raise AssertionError(f"{self.boundjid}: no answer to iq {xml_payload} to {to} "
                                 f"within {timeout}s") from None


class Harness:
    def __init__(self, srv):
        self.srv = srv
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.clients = []

    def run(self, coro, timeout=60.0):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def client(self, user, password, resource=None, mechs=None):
        jid = f"{user}@{self.srv.domain}" + (f"/{resource}" if resource else "")
        c = Client(self, jid, password, mechs)
        self.clients.append(c)
        return c

    async def login(self, user, password, resource=None, mechs=None, direct_tls=False,
                    presence=True, roster=True, priority=None, status=None,
                    timeout=DEFAULT_TIMEOUT):
        """Connects and waits for session_start; then (by default) fetches the roster
        and sends initial presence. Returns the client."""
        c = self.client(user, password, resource, mechs)
        await self.start(c, direct_tls, timeout)
        if roster:
            await asyncio.wait_for(c.get_roster(), timeout)
        if presence:
            kw = {}
            if priority is not None:
                kw["ppriority"] = priority
            if status is not None:
                kw["pstatus"] = status
            c.send_presence(**kw)
        return c

    async def start(self, c, direct_tls=False, timeout=DEFAULT_TIMEOUT):
        port = self.srv.tls_port if direct_tls else self.srv.port
        c.connect(address=(self.srv.host, port), use_ssl=direct_tls,
                  force_starttls=not direct_tls, disable_starttls=direct_tls)
        try:
            await asyncio.wait_for(asyncio.shield(c.session), timeout)
        except asyncio.TimeoutError:
            raise LoginFailed(f"{c.boundjid}: no session within {timeout}s; SASL failures: "
                              f"{c.failed_auths}; stream errors: "
                              f"{[str(e) for e in c.inbox['stream_error']]}") from None
        return c

    async def logout(self, c, timeout=5.0):
        if not c.gone.is_set():
            c.disconnect(wait=2.0)
            try:
                await asyncio.wait_for(c.gone.wait(), timeout)
            except asyncio.TimeoutError:
                c.abort()

    def close(self):
        async def _all():
            for c in self.clients:
                c.cancel_connection_attempt()
                if not c.gone.is_set() and c.transport is not None:
                    c.disconnect(wait=1.0)
            for c in self.clients:
                if c.transport is not None and not c.gone.is_set():
                    try:
                        await asyncio.wait_for(c.gone.wait(), 3.0)
                    except asyncio.TimeoutError:
                        c.abort()
        try:
            self.loop.run_until_complete(asyncio.wait_for(_all(), 10))
        except Exception:  # noqa: BLE001 - teardown is best effort
            for c in self.clients:
                try:
                    c.abort()
                except Exception:  # noqa: BLE001
                    pass
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            try:
                self.loop.run_until_complete(
                    asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 3))
            except Exception:  # noqa: BLE001
                pass
        self.loop.close()
        asyncio.set_event_loop(None)
