"""Fixtures for the HTTP JSON API tests (SPEC sections 6 and 7): each test module starts the
real fedgated (from $FG_BUILD_DIR, default /work/main/build) on its own loopback address
with every other listener off, a fresh SQLite store, and administrators created with
`fedgatectl admin add`. Requests go through http.client so that headers, bodies, source
addresses and cookies are exactly what each test says.

Expectations come from SPEC sections 1, 2, 5, 6, 7 and doc/cli-decisions.md; they are
written out here, never computed from the project's own code."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

BUILD_DIR = Path(os.environ.get("FG_BUILD_DIR", "/work/main/build"))
CTL = BUILD_DIR / "fedgatectl"
DAEMON = BUILD_DIR / "fedgated"

PASSWORDS = {"boss": "Boss-pw-123456", "adm": "Adm-pw-1234567", "vic": "Vic-pw-1234567"}
ROLES = {"boss": "server-admin", "adm": "administrator", "vic": "viewer"}

MSG = {
    "R3": "SASL needs TLS: set TLS to required or optional, or set SASL to not-supported "
          "if this partner cannot do TLS.",
    "R2": "Nothing could authenticate this partner: with SASL not-supported, dialback must "
          "be true.",
    "W1": "With TLS optional, a partner that declines TLS cannot authenticate (SASL needs "
          "TLS and dialback is not allowed here): set TLS to required.",
    "W2": "Dialback is never used while SASL is required.",
}

PARTNER_DEFAULTS = {
    "description": "", "additional_domains": [], "additional_domains_unicode": [],
    "subdomains": False, "partner_type": "public-unverified", "tls": "required",
    "sasl": "optional", "dialback": True, "keepalive": True, "connection_limit": None,
    "proxy_fqdn": "",
}

ERROR_CODES = {
    "usage", "invalid_value", "refused", "not_found", "exists", "io", "unauthorized",
    "forbidden", "csrf", "rate_limited", "too_large", "unsupported_media_type",
}


def base_env(extra=None):
    env = dict(os.environ)
    for k in ("SUDO_USER", "FEDGATE_CONFIG"):
        env.pop(k, None)
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.raw = raw

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all_headers(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None

    @property
    def text(self):
        return self.raw.decode("utf-8", "replace")

    def error(self, code, rule=None):
        """Asserts the SPEC 7 error object with this code and rule; returns it."""
        doc = self.json
        assert isinstance(doc, dict) and set(doc) == {"error"}, (self.status, doc)
        e = doc["error"]
        assert set(e) == {"code", "rule", "message", "fields"}, e
        assert e["code"] in ERROR_CODES
        assert e["code"] == code, (self.status, e)
        assert e["rule"] == rule, e
        assert isinstance(e["message"], str) and e["message"].strip(), e
        assert isinstance(e["fields"], list), e
        return e

    def __repr__(self):
        return f"<Resp {self.status} {self.raw[:300]!r}>"


class Client:
    """One API user: a session cookie and CSRF token after login, or a bearer token."""

    def __init__(self, gate, source=None, token=None):
        self.gate = gate
        self.source = source
        self.cookie = None
        self.csrf = None
        self.token = token
        self.user = None

    def conn(self):
        src = (self.source, 0) if self.source else None
        if self.gate.tls:
            ctx = ssl.create_default_context(cafile=str(self.gate.ca))
            ctx.check_hostname = False
            return http.client.HTTPSConnection(self.gate.connect_ip, self.gate.port, timeout=15,
                                               source_address=src, context=ctx)
        return http.client.HTTPConnection(self.gate.connect_ip, self.gate.port, timeout=15,
                                          source_address=src)

    def req(self, method, path, body=None, raw=None, ctype="application/json", csrf=True,
            headers=None, prefix="/api/v1"):
        h = {}
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None and ctype:
            h["Content-Type"] = ctype
        if self.cookie:
            h["Cookie"] = f"fedgate_session={self.cookie}"
        if csrf is True and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        elif isinstance(csrf, str):
            h["X-CSRF-Token"] = csrf
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        c = self.conn()
        try:
            c.request(method, prefix + path, body=raw, headers=h)
            r = c.getresponse()
            return Resp(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body if body is not None else None, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.req("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def login(self, user, password=None):
        r = self.req("POST", "/session",
                     {"username": user, "password": password or PASSWORDS[user]}, csrf=False)
        if r.status == 200:
            for v in r.all_headers("Set-Cookie"):
                if v.startswith("fedgate_session="):
                    self.cookie = v.split(";", 1)[0].split("=", 1)[1]
            self.csrf = r.json["csrf_token"]
            self.user = user
        return r


class Gate:
    """A private fedgated with its configuration, store and log in a temporary directory."""

    def __init__(self, d: Path, ip, port=5280, env=None, listen=None, connect_ip=None,
                 tls=False, ca=None):
        self.dir = d
        self.ip = ip
        self.port = port
        self.connect_ip = connect_ip or ip
        self.tls = tls
        self.ca = ca
        self.env = env or {}
        self.conf = d / "fedgate.conf"
        self.db = d / "fg.db"
        self.log_path = d / "fedgated.log"
        self.proc = None
        self.conf.write_text(
            f"[server]\ndomains = home.test, büro.test\nstore = sqlite:{self.db}\n"
            f"state_dir = {d}\n"
            f"[listen]\nc2s = off\nc2s_tls = off\ns2s = off\ns2s_tls = off\n"
            f"admin = {listen or f'{ip}:{port}'}\n"
            f"[tls]\ncert_dir = {d / 'tls'}\n")

    def ctl(self, *args, input=None):
        p = subprocess.run([str(CTL), "--config", str(self.conf), *map(str, args)], input=input,
                           capture_output=True, text=True, timeout=60, env=base_env(),
                           cwd=self.dir)
        return p

    def ctl_json(self, *args):
        p = self.ctl("--json", *args)
        return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None

    def add_admin(self, name, role, password):
        f = self.dir / f"{name}.pw"
        f.write_text(password + "\n")
        p = self.ctl("admin", "add", name, "--role", role, "--password-file", f)
        assert p.returncode == 0, p.stderr

    def start(self):
        assert not port_open(self.connect_ip, self.port), \
            f"{self.connect_ip}:{self.port} is busy before the start (a daemon left over?)"
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(DAEMON), "--config", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=base_env(self.env),
                                     cwd=self.dir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"fedgated exited {self.proc.returncode}:\n{self.log()}")
            if port_open(self.connect_ip, self.port):
                return self
            time.sleep(0.05)
        raise AssertionError(f"fedgated did not listen on {self.connect_ip}:{self.port}\n"
                             f"{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.logf.close()

    def client(self, user=None, **kw):
        c = Client(self, **kw)
        if user:
            r = c.login(user)
            assert r.status == 200, r
        return c

    def token(self, user, role=None, expires_days=None):
        """A bearer token made by the server-admin boss through the API."""
        body = {"name": user}
        if role:
            body["role"] = role
        if expires_days:
            body["expires_days"] = expires_days
        r = self.client("boss").post("/tokens", body)
        assert r.status == 201, r
        return r.json["token"]

    def snapshot(self):
        """What the store holds, as fedgatectl shows it."""
        out = []
        for args in (("partner", "list"), ("audit",), ("gateway", "show"), ("user", "list"),
                     ("admin", "list")):
            p = self.ctl("--json", *args)
            out.append((args, p.returncode, p.stdout))
        return out


def port_open(ip, port):
    try:
        socket.create_connection((ip, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def require_binaries():
    for b in (CTL, DAEMON):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is not built (set FG_BUILD_DIR)", pytrace=False)


def make_gate(tmp_path_factory, ip, port=5280, env=None, admins=True, **kw):
    require_binaries()
    g = Gate(tmp_path_factory.mktemp("api"), ip, port, env=env, **kw)
    if admins:
        for name, role in ROLES.items():
            g.add_admin(name, role, PASSWORDS[name])
    return g.start()
