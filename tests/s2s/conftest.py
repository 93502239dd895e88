"""Fixtures for the federation tests (issue 5): two real fedgated instances, a.test on
127.0.0.71 and b.test on 127.0.0.72, a test PKI (tests/pki/make-pki), a private unbound
(tests/dns/unbound-test) serving their A and _xmpp-server._tcp SRV records, partners
configured with fedgatectl, and python3-slixmpp clients (tests/c2s/slix.py).

Expectations come from RFC 6120, XEP-0178/0220, SPEC sections 3 and 7 and issue 5; they
are written out in the tests."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "c2s"))

BUILD_DIR = Path(os.environ.get("FG_BUILD_DIR", "/work/main/build"))
CTL = BUILD_DIR / "fedgatectl"
DAEMON = BUILD_DIR / "fedgated"
MAKE_PKI = HERE.parent / "pki" / "make-pki"
UNBOUND = HERE.parent / "dns" / "unbound-test"
# FG_S2S_NET / FG_S2S_DNS_PORT move the whole suite to other loopback addresses, so that two
# copies can run side by side while developing (CI uses the defaults)
NET = os.environ.get("FG_S2S_NET", "127.0.0")
DNS_PORT = int(os.environ.get("FG_S2S_DNS_PORT", "5371"))
HOSTS = {"a.test": f"{NET}.71", "b.test": f"{NET}.72", "c.test": f"{NET}.73",
         "d.test": f"{NET}.74", "p.test": f"{NET}.75"}
# c.test: unlisted; d.test: a partner nobody serves; p.test: Prosody (test_prosody.py)
TEST_TIMEOUT = 120
_SELF = sys.modules[__name__]  # taken at import, while the name still means this file


@pytest.fixture(scope="session")
def kit():
    """This module, for test modules (`from conftest import` may find another directory's
    conftest when several test directories run in one pytest)."""
    return _SELF


@pytest.fixture(autouse=True)
def _watchdog():
    def boom(*_):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def base_env():
    env = dict(os.environ)
    for k in ("SUDO_USER", "FEDGATE_CONFIG"):
        env.pop(k, None)
    env["LC_ALL"] = "C.UTF-8"
    return env


def wait_listening(host, port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    p = subprocess.run(["sh", str(MAKE_PKI), str(d), *HOSTS], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, f"make-pki failed: {p.stderr}"
    return d


@pytest.fixture(scope="session")
def dns(tmp_path_factory):
    d = tmp_path_factory.mktemp("dns")
    records = []
    for dom, ip in HOSTS.items():
        records += [f"{dom}. A {ip}", f"_xmpp-server._tcp.{dom}. SRV 0 0 5269 {dom}."]
    env = base_env()
    env["UNBOUND_TEST_OWNER"] = str(os.getpid())
    p = subprocess.run(["sh", str(UNBOUND), "start", str(d), str(DNS_PORT), *records],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, f"unbound-test failed: {p.stderr}"
    yield f"127.0.0.1@{DNS_PORT}"
    subprocess.run(["sh", str(UNBOUND), "stop", str(d)], capture_output=True, timeout=30)


class Node:
    """One fedgated: c2s on 5222/5223, s2s on 5269, its own SQLite store."""
    kind = "fedgated"

    def __init__(self, d: Path, domain, pki: Path, resolver):
        self.dir = d
        self.domain = domain
        self.host = HOSTS[domain]
        self.port, self.tls_port = 5222, 5223
        self.pki = pki
        self.ca = pki / "ca.crt"
        self.conf = d / "fedgate.conf"
        self.db = d / "fg.db"
        self.log_path = d / "server.log"
        self.proc = None
        self.logf = None
        self.conf.write_text(
            f"[server]\ndomains = {domain}\nstore = sqlite:{self.db}\nstate_dir = {d}\n"
            f"log_level = debug\n"
            f"[listen]\nc2s = {self.host}:5222\nc2s_tls = {self.host}:5223\n"
            f"s2s = {self.host}:5269\ns2s_tls = off\nadmin = {self.host}:5280\n"
            f"[tls]\ncert_dir = {pki}\nca_file = {pki / 'ca.crt'}\n"
            f"[dns]\nresolver = {resolver}\n")

    def ctl(self, *args, input=None):
        return subprocess.run([str(CTL), "--config", str(self.conf), *map(str, args)],
                              input=input, capture_output=True, text=True, timeout=30,
                              env=base_env(), cwd=self.dir)

    def ok(self, *args, input=None):
        p = self.ctl(*args, input=input)
        assert p.returncode == 0, f"fedgatectl {' '.join(map(str, args))}: {p.stderr}{p.stdout}"
        return p.stdout

    def add_user(self, local, pw):
        self.ok("user", "add", f"{local}@{self.domain}", "--password-file", "-", input=pw + "\n")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def status(self, domain=None):
        args = ["--json", "partner", "status"] + ([domain] if domain else [])
        return json.loads(self.ok(*args))

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(DAEMON), "--config", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=base_env(), cwd=self.dir,
                                     start_new_session=True)
        if not (wait_listening(self.host, 5222, 20, self.proc) and
                wait_listening(self.host, 5269, 5, self.proc)):
            self.stop()
            pytest.fail(f"fedgated {self.domain} did not start; log:\n{self.log()[-3000:]}")

    def stop(self):
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                problems.append(f"fedgated {self.domain} did not exit within 10s of SIGTERM")
                self.proc.kill()
                self.proc.wait(5)
        elif self.proc is not None:
            problems.append(f"fedgated {self.domain} had exited by itself "
                            f"(status {self.proc.returncode})")
        if self.proc is not None and self.proc.returncode not in (0, None) and not problems:
            problems.append(f"fedgated {self.domain} exited with {self.proc.returncode}")
        if self.logf:
            self.logf.close()
            self.logf = None
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in self.log():
                problems.append(f"sanitizer report in the {self.domain} log")
        return problems


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, pki, dns):
    a = Node(tmp_path_factory.mktemp("a"), "a.test", pki, dns)
    b = Node(tmp_path_factory.mktemp("b"), "b.test", pki, dns)
    a.ok("partner", "new", "b.test", "--type", "federated")
    b.ok("partner", "new", "a.test", "--type", "federated")
    for n in (a, b):
        for u in ("alice", "bob", "carol"):
            n.add_user(u, f"pw-{u}-Secret")
    a.start()
    b.start()
    yield a, b
    problems = a.stop() + b.stop()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def xmpp(nodes):
    from slix import Harness
    h = Harness(nodes[0])
    yield h
    h.close()
