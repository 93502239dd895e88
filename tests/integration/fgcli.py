"""Helpers for the command-line integration tests (the fixtures are in conftest.py): they
run the real `fedgatectl` and `fedgated` binaries (found in $FG_BUILD_DIR, default
/work/main/build) against a fresh SQLite store in a private temporary directory per test,
with every listener off.

The expectations come from SPEC sections 1, 2, 5, 6 and 7 and doc/cli-decisions.md; they
are written out here, never computed from the project's own code."""
import json
import os
import pwd
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

BUILD_DIR = Path(os.environ.get("FG_BUILD_DIR", "/work/main/build"))
CTL = BUILD_DIR / "fedgatectl"
DAEMON = BUILD_DIR / "fedgated"
TIMEOUT = 30  # seconds, per fedgatectl invocation

# SPEC section 2, exact texts.
MSG = {
    "R3": "SASL needs TLS: set TLS to required or optional, or set SASL to not-supported "
          "if this partner cannot do TLS.",
    "R2": "Nothing could authenticate this partner: with SASL not-supported, dialback must "
          "be true.",
    "W1": "With TLS optional, a partner that declines TLS cannot authenticate (SASL needs "
          "TLS and dialback is not allowed here): set TLS to required.",
    "W2": "Dialback is never used while SASL is required.",
}

# SPEC section 1: the keys of a partner object.
PARTNER_KEYS = {
    "domain", "domain_unicode", "description", "additional_domains",
    "additional_domains_unicode", "subdomains", "partner_type", "tls", "sasl", "dialback",
    "keepalive", "connection_limit", "proxy_fqdn",
}

# SPEC section 1 defaults (domain fields aside).
PARTNER_DEFAULTS = {
    "description": "",
    "additional_domains": [],
    "additional_domains_unicode": [],
    "subdomains": False,
    "partner_type": "public-unverified",
    "tls": "required",
    "sasl": "optional",
    "dialback": True,
    "keepalive": True,
    "connection_limit": None,
    "proxy_fqdn": "",
}

# SPEC section 5 defaults (the secret is never shown).
GATEWAY_DEFAULTS = {
    "connection_limit": 1000,
    "partner_connection_limit": 20,
    "keepalive_interval": 300,
    "stream_establishment_timeout": 60,
    "stream_inactivity_timeout": 600,
    "subscription_refresh_interval": 28800,
    "log_message_bodies": False,
    "unlisted_domains": "block",
}

ERROR_CODES = {
    "usage", "invalid_value", "refused", "not_found", "exists", "io", "unauthorized",
    "forbidden", "csrf", "rate_limited", "too_large", "unsupported_media_type",
}

AUDIT_KEYS = {"time", "actor", "address", "action", "object", "before", "after"}

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

LISTEN_OFF = "[listen]\nc2s = off\nc2s_tls = off\ns2s = off\ns2s_tls = off\nadmin = off\n"


def login_name():
    return pwd.getpwuid(os.getuid()).pw_name


def base_env(extra=None):
    env = dict(os.environ)
    for k in ("SUDO_USER", "FEDGATE_CONFIG"):
        env.pop(k, None)
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


def parse_json_doc(text):
    """Exactly one JSON document: json.loads refuses trailing data."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise AssertionError(f"stdout is not exactly one JSON document ({e}): {text!r}")


class Result(tuple):
    """(rc, stdout, stderr) with a .json property for --json runs."""

    @property
    def rc(self):
        return self[0]

    @property
    def out(self):
        return self[1]

    @property
    def err(self):
        return self[2]

    @property
    def json(self):
        return parse_json_doc(self[1])


class Gate:
    """One test's private fedgate setup: a directory, a configuration file, a store."""

    def __init__(self, d: Path):
        self.dir = d
        self.conf = d / "fedgate.conf"
        self.db = d / "fg.db"
        self.write_conf()

    def write_conf(self, server_extra="", store=None, extra=""):
        store = store or f"sqlite:{self.db}"
        self.conf.write_text(
            f"[server]\ndomains = home.test, home2.test\nstore = {store}\n"
            f"state_dir = {self.dir}\n{server_extra}" + LISTEN_OFF + extra)

    # -- running fedgatectl -------------------------------------------------------
    def run(self, *args, input=None, env=None, conf=True, timeout=TIMEOUT, cwd=None):
        cmd = [str(CTL)] + (["--config", str(self.conf)] if conf else []) + [str(a) for a in args]
        try:
            p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                               timeout=timeout, env=base_env(env), cwd=cwd or self.dir)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fedgatectl timed out after {timeout}s: {cmd}")
        return Result((p.returncode, p.stdout, p.stderr))

    def jrun(self, *args, **kw):
        """Runs with --json; returns (rc, parsed document, stderr)."""
        r = self.run("--json", *args, **kw)
        return r.rc, r.json, r.err

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.rc == 0, f"fedgatectl {' '.join(map(str, args))} -> {r.rc}\n{r.err}"
        return r

    def pwfile(self, password, name="pw"):
        f = self.dir / name
        f.write_text(password + "\n")
        return f

    # -- reading the store through the CLI ------------------------------------------
    def partner(self, domain):
        rc, j, err = self.jrun("partner", "show", domain)
        if rc == 4:
            return None
        assert rc == 0, err
        return j["partner"]

    def partners(self):
        rc, j, err = self.jrun("partner", "list")
        assert rc == 0, err
        return j["partners"]

    def audit(self, *args):
        rc, j, err = self.jrun("audit", *args)
        assert rc == 0, err
        return j["audit"]

    def gateway(self):
        rc, j, err = self.jrun("gateway", "show")
        assert rc == 0, err
        return j["gateway"]

    def snapshot(self):
        """The store as a user sees it: partner list, audit, gateway, users, admins."""
        parts = []
        for args in (("partner", "list"), ("audit",), ("gateway", "show"), ("user", "list"),
                     ("admin", "list")):
            r = self.run("--json", *args)
            parts.append((args, r.rc, r.out))
        return parts

    def init_store(self):
        self.ok("partner", "list")

    # -- looking inside the SQLite file (only for secrets that no interface shows) ------
    def db_rows(self):
        """Every (table, row-dict) of the SQLite store."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")]
            for t in tables:
                cur = con.execute(f'SELECT * FROM "{t}"')
                cols = [c[0] for c in cur.description]
                for row in cur.fetchall():
                    yield t, dict(zip(cols, row))
        finally:
            con.close()

    def db_values_near(self, word):
        """Values stored under a column or key whose name contains word (e.g. the dialback
        secret, the heartbeat), whatever the schema looks like."""
        found = []
        for t, row in self.db_rows():
            if t.lower().startswith("audit"):
                continue
            for col, v in row.items():
                if word in col.lower() and v not in (None, ""):
                    found.append(str(v))
            names = [v for v in row.values() if isinstance(v, str) and word in v.lower()]
            if names:
                for v in row.values():
                    if isinstance(v, (str, bytes)) and v not in names and v not in ("", None):
                        found.append(v.decode() if isinstance(v, bytes) else v)
        return found

    def dialback_secret(self):
        vals = [v for v in self.db_values_near("dialback")
                if isinstance(v, str) and len(v) >= 16 and re.fullmatch(r"[A-Za-z0-9+/=_-]+", v)]
        return vals[0] if vals else None


def require(binary):
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not built (set FG_BUILD_DIR)", pytrace=False)


# ---- helpers shared by test modules -----------------------------------------------------
def assert_partner_shape(p):
    assert isinstance(p, dict), p
    assert set(p) == PARTNER_KEYS, f"partner keys differ: {sorted(set(p) ^ PARTNER_KEYS)}"
    assert isinstance(p["domain"], str) and isinstance(p["domain_unicode"], str)
    assert isinstance(p["description"], str)
    assert isinstance(p["additional_domains"], list)
    assert isinstance(p["additional_domains_unicode"], list)
    assert len(p["additional_domains"]) == len(p["additional_domains_unicode"])
    for k in ("subdomains", "dialback", "keepalive"):
        assert isinstance(p[k], bool), (k, p[k])
    assert p["partner_type"] in ("federated", "public-verified", "public-unverified")
    for k in ("tls", "sasl"):
        assert p[k] in ("required", "optional", "not-supported")
    assert p["connection_limit"] is None or (
        isinstance(p["connection_limit"], int) and not isinstance(p["connection_limit"], bool)
        and 1 <= p["connection_limit"] <= 65535)
    assert isinstance(p["proxy_fqdn"], str)


def assert_error_doc(doc, code, rule=None, fields=None):
    """The JSON error object of SPEC section 7, and nothing else in the document."""
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    e = doc["error"]
    assert set(e) == {"code", "rule", "message", "fields"}, e
    assert e["code"] in ERROR_CODES
    assert e["code"] == code, e
    assert e["rule"] == rule, e
    assert isinstance(e["message"], str) and e["message"].strip(), e
    assert isinstance(e["fields"], list) and all(isinstance(f, str) for f in e["fields"]), e
    if fields is not None:
        for f in fields:
            assert f in e["fields"], (f, e)
    return e


def assert_audit_record(r):
    assert isinstance(r, dict), r
    assert AUDIT_KEYS <= set(r) <= AUDIT_KEYS | {"id"}, sorted(r)
    assert isinstance(r["time"], str) and RFC3339_UTC.match(r["time"]), r["time"]
    for k in ("actor", "address", "action", "object"):
        assert isinstance(r[k], str) and r[k], (k, r)
    for k in ("before", "after"):
        assert r[k] is None or isinstance(r[k], dict), f"{k} must be a JSON object or null: {r[k]!r}"


# ---- daemon ---------------------------------------------------------------------------------
LOG_LINE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (error|warn|info|debug) event=[A-Za-z0-9._-]+'
    r'( [A-Za-z0-9_.-]+=("(\\.|[^"\\])*"|[^\s"]+))*$')


class Daemon:
    def __init__(self, gate: Gate, log_path: Path, args=()):
        self.gate = gate
        self.log_path = log_path
        self.logf = open(log_path, "wb")
        self.proc = subprocess.Popen([str(DAEMON), "--config", str(gate.conf), *args],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=base_env(), cwd=gate.dir)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def lines(self):
        return [l for l in self.log().splitlines() if l.strip()]

    def wait_for(self, pred, timeout, start_line=0):
        """Waits until a log line (from start_line on) satisfies pred; returns it or None."""
        deadline = time.monotonic() + timeout
        while True:
            for l in self.lines()[start_line:]:
                if pred(l):
                    return l
            if time.monotonic() >= deadline or self.proc.poll() is not None:
                for l in self.lines()[start_line:]:
                    if pred(l):
                        return l
                return None
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                pytest.fail(f"fedgated did not exit within {timeout}s of signal {sig}")
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.logf.close()


# ---- configuration errors (shared by fedgatectl and fedgated tests) ---------------------------
def assert_names_file_line_key(text, conf, line, key):
    assert str(conf) in text, f"message does not name the file {conf}: {text!r}"
    lines = line if isinstance(line, tuple) else (line,)
    assert any(re.search(rf"(?<![0-9]){n}(?![0-9])", text.replace(str(conf), "FILE"))
               for n in lines), f"message does not name line {line}: {text!r}"
    assert key in text, f"message does not name the key {key!r}: {text!r}"


def server(fg):
    return (f"[server]\ndomains = home.test, home2.test\nstore = sqlite:{fg.db}\n"
            f"state_dir = {fg.dir}\n")


# (id, text of the file, the line at fault, the key or section named)
BAD_CONFIGS = [
    ("unknown key", lambda fg: server(fg) + "colour = blue\n" + LISTEN_OFF, 5, "colour"),
    ("unknown key in listen", lambda fg: server(fg) + LISTEN_OFF + "xmpp = 127.0.0.1:1\n",
     11, "xmpp"),
    ("unknown section", lambda fg: server(fg) + LISTEN_OFF + "[bogus]\nx = 1\n", (11, 12), "bogus"),
    ("bad log_level", lambda fg: server(fg) + "log_level = loud\n" + LISTEN_OFF, 5,
     "log_level"),
    ("bad listen address", lambda fg: server(fg) + LISTEN_OFF.replace(
        "s2s = off", "s2s = not-an-address"), 8, "s2s"),
    ("bad listen port", lambda fg: server(fg) + LISTEN_OFF.replace(
        "admin = off", "admin = 127.0.0.1:99999"), 10, "admin"),
    ("bad integer", lambda fg: server(fg) + LISTEN_OFF + "[limits]\nmax_xml_depth = deep\n",
     12, "max_xml_depth"),
    ("bad bool", lambda fg: server(fg) + LISTEN_OFF + "[c2s]\nrequire_tls = maybe\n", 12,
     "require_tls"),
    ("bad hosted domain", lambda fg: server(fg).replace(
        "home.test, home2.test", "home.test, bad_domain..test") + LISTEN_OFF, 2, "domains"),
    ("bad store url", lambda fg: server(fg).replace(
        f"sqlite:{fg.db}", "mysql://x/y") + LISTEN_OFF, 3, "store"),
    ("not key=value", lambda fg: server(fg) + "this is not ini\n" + LISTEN_OFF, 5, ""),
]
