"""A client library of another family (issue 4): @xmpp/client (xmpp.js) under Node.js,
run by tests/c2s/node/client.mjs, logs in with SCRAM-SHA-1 over STARTTLS (and over
direct TLS) and exchanges a chat message with our raw Python client.

node_modules is not committed: the fixture runs `npm ci` in tests/c2s/node when it is
missing (package-lock.json pins the versions)."""
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import xmppraw as xr

ADDR = "127.0.0.65"
SETTINGS = {}
USER_POOL = 10
NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    if not exe:
        pytest.fail("node is not installed (Debian package nodejs)")
    if not (NODE_DIR / "node_modules" / "@xmpp" / "client").is_dir():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm is not installed (Debian package npm)")
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"npm ci failed: {p.stdout}\n{p.stderr}"
    return exe


class NodeClient:
    def __init__(self, node, srv, service, user, pw, peer, timeout_ms=20000):
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(srv.ca))
        self.p = subprocess.Popen(
            [node, "client.mjs", service, srv.domain, user, pw, peer, str(timeout_ms)],
            cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.events = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "garbage", "line": line}
            with self.cv:
                self.events.append(ev)
                self.cv.notify_all()
        with self.cv:
            self.events.append({"event": "exit"})
            self.cv.notify_all()

    def wait(self, name, timeout=25):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for ev in self.events:
                    if ev["event"] == name:
                        return ev
                    if ev["event"] in ("error", "exit") and name not in ("error", "exit"):
                        raise AssertionError(f"xmpp.js: {ev}; all: {self.events}; "
                                             f"stderr: {self.stderr()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"xmpp.js: no '{name}' within {timeout}s; "
                                         f"events: {self.events}")
                self.cv.wait(left)

    def stderr(self):
        if self.p.poll() is None:
            return "(running)"
        return self.p.stderr.read()[-2000:]

    def finish(self, timeout=10):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            raise AssertionError("xmpp.js client did not exit") from None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


@pytest.mark.parametrize("transport", ["starttls", "direct-tls"])
def test_xmppjs_chats_with_python_client(srv, node, transport, alive):
    (nu, np_), (pu, pp) = srv.new_users(2)
    peer = xr.login(srv, pu, pp, resource="py")
    service = (f"xmpp://{srv.host}:{srv.port}" if transport == "starttls"
               else f"xmpps://{srv.host}:{srv.tls_port}")
    nc = NodeClient(node, srv, service, nu, np_, peer.jid)
    try:
        online = nc.wait("online")
        assert online["jid"].startswith(f"{nu}@{srv.domain}/"), online
        assert online["secure"] is True, online
        assert online["mechanism"] == "SCRAM-SHA-1", online
        m = peer.wait_for(lambda e: e.tag == xr.q("message")
                          and (e.find(xr.q("body")) is not None), 15, what="xmpp.js's message")
        assert m.get("from") == online["jid"], xr.ET.tostring(m)
        assert m.find(xr.q("body")).text == "hello from xmpp.js"
        peer.send(xr.message(online["jid"], "hello from python"))
        got = nc.wait("received")
        assert got["body"] == "hello from python" and got["from"] == peer.jid, got
        assert nc.finish() == 0, nc.events
    finally:
        nc.kill()
        peer.close()


def test_xmppjs_wrong_password(srv, node, alive):
    (nu, np_), = srv.new_users(1)
    nc = NodeClient(node, srv, f"xmpp://{srv.host}:{srv.port}", nu, np_ + "-wrong",
                    f"nobody@{srv.domain}/x")
    try:
        err = nc.wait("error")
        assert err.get("condition") == "not-authorized", err
        assert nc.finish() == 1
    finally:
        nc.kill()
