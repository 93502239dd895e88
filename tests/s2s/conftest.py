"""Fixtures for the federation tests (issue 5): two real fedgated instances, a.test on
127.0.0.71 and b.test on 127.0.0.72, a test PKI (tests/pki/make-pki), a private unbound
(tests/dns/unbound-test) serving their A and _xmpp-server._tcp SRV records, partners
configured with fedgatectl, and python3-slixmpp clients (tests/c2s/slix.py).

Expectations come from RFC 6120, XEP-0178/0220, SPEC sections 3 and 7 and issue 5; they
are written out in the tests."""
import json
import os
import re
import signal
import socket
import ssl
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
         "d.test": f"{NET}.74", "p.test": f"{NET}.75", "e.test": f"{NET}.76",
         "f.test": f"{NET}.77"}
# c.test: unlisted; d.test: a partner nobody serves; p.test: Prosody (test_prosody.py);
# e.test, f.test: further fedgated nodes or fake peers (test_dns.py, test_keepalive.py)


def addr(n):
    """Another loopback address of this suite's network (NET.n), e.g. for a server that
    is down or a second node under another name."""
    return f"{NET}.{n}"
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

    def __init__(self, d: Path, domain, pki: Path, resolver, *, host=None, cert_dir=None,
                 s2s_tls=False):
        """host: the address to listen on (default HOSTS[domain]); cert_dir: where
        DOMAIN.crt/.key come from (default the PKI directory; see cert_variant);
        s2s_tls: also listen for direct TLS (XEP-0368) on port 5270."""
        self.dir = d
        self.domain = domain
        self.host = host or HOSTS[domain]
        self.port, self.tls_port = 5222, 5223
        self.pki = pki
        self.ca = pki / "ca.crt"
        self.conf = d / "fedgate.conf"
        self.db = d / "fg.db"
        self.log_path = d / "server.log"
        self.proc = None
        self.logf = None
        direct = f"{self.host}:5270" if s2s_tls else "off"
        self.conf.write_text(
            f"[server]\ndomains = {domain}\nstore = sqlite:{self.db}\nstate_dir = {d}\n"
            f"log_level = debug\n"
            f"[listen]\nc2s = {self.host}:5222\nc2s_tls = {self.host}:5223\n"
            f"s2s = {self.host}:5269\ns2s_tls = {direct}\nadmin = {self.host}:5280\n"
            f"[tls]\ncert_dir = {cert_dir or pki}\nca_file = {pki / 'ca.crt'}\n"
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


def stop_all(nodes):
    """Stops every node (each even when another had a problem), then fails the test with
    every problem found: a daemon that did not exit, exited by itself, or left a sanitizer
    report."""
    problems = []
    for n in nodes:
        problems += n.stop()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


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
    stop_all((a, b))


@pytest.fixture
def xmpp(nodes):
    from slix import Harness
    h = Harness(nodes[0])
    yield h
    h.close()


# ---- helpers for the failure, DNS and keep-alive tests ----

def cert_variant(pki: Path, variant, domain, dest: Path):
    """A cert_dir for one node holding DOMAIN.crt/.key taken from the PKI's negative
    variants (tests/pki/make-pki): 'bad' (right names, issued by other-ca) or 'wrongname'
    (issued by the test CA for wrongname.invalid)."""
    dest.mkdir(parents=True, exist_ok=True)
    for ext in ("crt", "key"):
        src = pki / variant / f"{domain}.{ext}"
        assert src.is_file(), f"make-pki made no {src}"
        (dest / f"{domain}.{ext}").write_bytes(src.read_bytes())
        os.chmod(dest / f"{domain}.{ext}", 0o600 if ext == "key" else 0o644)
    return dest


_PAIR = re.compile(r'([A-Za-z_][\w-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """`TIME LEVEL key=value ...` (SPEC section 7) as a dict; quoted values unescaped."""
    parts = line.split(" ", 2)
    if len(parts) < 3:
        return None
    d = {"_time": parts[0], "_level": parts[1], "_line": line}
    for k, v in _PAIR.findall(parts[2]):
        if v.startswith('"'):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        d[k] = v
    return d


def log_events(node, event, **match):
    """The log lines of node with event=EVENT whose keys equal match, as dicts."""
    out = []
    for line in node.log().splitlines():
        if f"event={event} " not in line + " ":
            continue
        d = parse_log_line(line)
        if d and d.get("event") == event and all(d.get(k) == v for k, v in match.items()):
            out.append(d)
    return out


def wait_event(node, event, timeout=10, **match):
    """Waits for a log line of node with event=EVENT and these key values; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        ev = log_events(node, event, **match)
        if ev:
            return ev[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no event={event} {match} in the {node.domain} log within "
                                 f"{timeout}s; end of the log:\n{node.log()[-3000:]}")
        time.sleep(0.1)


def apply(node, *args, timeout=10):
    """Runs `fedgatectl ARGS` (a partner or gateway change) and waits until the daemon has
    loaded it (its event=config-change line; SPEC: within 2 seconds)."""
    before = len(log_events(node, "config-change"))
    out = node.ok(*args)
    deadline = time.monotonic() + timeout
    while len(log_events(node, "config-change")) <= before:
        assert time.monotonic() < deadline, \
            f"{node.domain} did not load `{' '.join(map(str, args))}` within {timeout}s"
        time.sleep(0.1)
    return out


class PrivateDNS:
    """A private unbound (tests/dns/unbound-test) with its own records, on a port derived
    from DNS_PORT so that parallel copies of the suite do not meet."""

    def __init__(self, d: Path, port, records):
        self.dir = d
        self.port = port
        env = base_env()
        env["UNBOUND_TEST_OWNER"] = str(os.getpid())
        p = subprocess.run(["sh", str(UNBOUND), "start", str(d), str(port), *records],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0, f"unbound-test failed: {p.stderr}"
        self.resolver = f"127.0.0.1@{port}"

    def stop(self):
        subprocess.run(["sh", str(UNBOUND), "stop", str(self.dir)], capture_output=True,
                       timeout=30)


def tcp_established():
    """Established TCP connections on this machine as ((ip, port), (ip, port)) pairs
    (local, remote), from /proc/net/tcp: which address and port a link really uses."""
    def dec(h):
        ip, port = h.split(":")
        return (socket.inet_ntoa(int(ip, 16).to_bytes(4, "little")), int(port, 16))
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[3] == "01":
                out.append((dec(cols[1]), dec(cols[2])))
    return out


NS_STREAMS = "http://etherx.jabber.org/streams"


def stream_header(frm, to, version=True, db=True):
    attrs = f" from='{frm}'" if frm else ""
    attrs += f" to='{to}'" if to else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            f"xmlns:stream='{NS_STREAMS}'" + (" xmlns:db='jabber:server:dialback'" if db else "")
            + attrs + (" version='1.0'" if version else "") + ">").encode()


class Raw:
    """A raw s2s peer on a socket: sends bytes, collects what arrives, can start TLS."""

    def __init__(self, host=None, port=None, bind=None, timeout=10, sock=None):
        """Connects to host:port (from the address bind when given), or wraps sock (an
        accepted connection, see RawServer)."""
        if sock is None:
            sock = socket.socket()
            sock.settimeout(timeout)
            if bind:
                sock.bind((bind, 0))
            sock.connect((host, port))
        self.sock = sock
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def read_until(self, pred, timeout=10):
        """Reads until pred(buffer) (a bytes pattern or a function) holds or the peer
        closes; returns whether it held."""
        if isinstance(pred, (bytes, str)):
            pat = pred if isinstance(pred, bytes) else pred.encode()
            pred = lambda b, pat=pat: pat in b  # noqa: E731
        deadline = time.monotonic() + timeout
        while not pred(self.buf):
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return False
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                return bool(pred(self.buf))
            self.buf += chunk
        return True

    def wait_closed(self, timeout=10):
        self.read_until(lambda b: False, timeout)
        return self.closed

    def starttls(self, server_hostname=None, ca=None, cert=None, key=None):
        """Switches to TLS as the client (after <proceed/>), presenting the certificate
        cert/key when given; the buffer starts empty again."""
        ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
        if not ca:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(str(cert), str(key))
        self.sock.settimeout(10)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""

    def starttls_server(self, cert, key, alpn=None):
        """Switches to TLS as the server with the certificate cert/key (full chain)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.sock.settimeout(10)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RawServer:
    """A listening socket for a fake s2s peer; accept() gives a Raw."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)

    def accept(self, timeout=20):
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        return Raw(sock=conn)

    def close(self):
        self.sock.close()


class Background:
    """Runs fn() in a thread (a fake peer while the test's clients run); result() joins
    it and re-raises what it raised."""

    def __init__(self, fn):
        import threading
        self.value = self.error = None

        def run():
            try:
                self.value = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                self.error = e
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the fake peer still runs after {timeout}s"
        if self.error is not None:
            raise self.error
        return self.value
