"""Fixtures for the XMPP client-side integration tests (issue 4, "Tests"): real clients
(python3-slixmpp, a raw client of our own in xmppraw.py, and @xmpp/client from npm)
against the real fedgated from $FG_BUILD_DIR (default /work/main/build).

Each test module declares
    ADDR      its own loopback address (127.0.0.61 ... 127.0.0.68), so modules never collide
    SETTINGS  {"section.key": value} for fedgate.conf ([c2s], [limits])
and gets one daemon (fixture `srv`, module scope) listening on ADDR:5222 (c2s, STARTTLS)
and ADDR:5223 (c2s_tls, XEP-0368 direct TLS), every other listener off, a fresh SQLite
store, a test PKI made by tests/pki/make-pki, and users created on demand with
`fedgatectl user add`.

Expectations come from RFC 6120/6121, the XEPs named in each test, SPEC section 7 and
issue 4; they are written out in the tests, never computed from fedgate's code.

FG_C2S_SERVER=prosody runs the same tests against Prosody 0.12 (on 127.0.0.69, users in
its internal_plain store) to check the tests and clients themselves; tests of behaviour
Prosody does not have are marked `fedgate_only`."""
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BUILD_DIR = Path(os.environ.get("FG_BUILD_DIR", "/work/main/build"))
CTL = BUILD_DIR / "fedgatectl"
DAEMON = BUILD_DIR / "fedgated"
HERE = Path(__file__).resolve().parent
MAKE_PKI = HERE.parent / "pki" / "make-pki"
KIND = os.environ.get("FG_C2S_SERVER", "fedgated")
PROSODY_ADDR = "127.0.0.69"
DOMAIN = "c2s.test"
TEST_TIMEOUT = 120  # seconds: a hung test fails instead of hanging the suite

# Many clients (the load test) need descriptors, and the daemon inherits our limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 65536 if _hard == resource.RLIM_INFINITY else min(_hard, 65536)
if _soft < _want:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))
    except (ValueError, OSError):
        pass


def pytest_configure(config):
    config.addinivalue_line("markers", "fedgate_only(reason): behaviour Prosody lacks; "
                            "skipped when FG_C2S_SERVER=prosody")


def pytest_collection_modifyitems(config, items):
    if KIND != "prosody":
        return
    for it in items:
        m = it.get_closest_marker("fedgate_only")
        if m:
            it.add_marker(pytest.mark.skip(reason="fedgate only: " + (m.args[0] if m.args
                                                                       else "")))


@pytest.fixture(autouse=True)
def _watchdog():
    """Fails a test that runs past TEST_TIMEOUT (every wait is bounded anyway)."""
    def boom(*_):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def base_env(extra=None):
    env = dict(os.environ)
    for k in ("SUDO_USER", "FEDGATE_CONFIG"):
        env.pop(k, None)
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
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
    """tests/pki/make-pki DIR c2s.test: DIR/ca.crt, DIR/c2s.test.crt + .key."""
    d = tmp_path_factory.mktemp("pki")
    deadline = time.monotonic() + 60
    while not os.access(MAKE_PKI, os.X_OK):  # written by another engineer; wait briefly
        if time.monotonic() > deadline:
            pytest.fail(f"{MAKE_PKI} is missing")
        time.sleep(2)
    p = subprocess.run(["sh", str(MAKE_PKI), str(d), DOMAIN], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, f"make-pki failed: {p.stderr}"
    for f in ("ca.crt", f"{DOMAIN}.crt", f"{DOMAIN}.key"):
        assert (d / f).is_file(), f"make-pki did not make {f}"
    return d


class Server:
    """One server under test. host/port (STARTTLS), tls_port (direct TLS), domain, ca."""
    kind = "?"

    def __init__(self, d: Path, addr, pki: Path, settings):
        self.dir = d
        self.host = addr
        self.port = 5222
        self.tls_port = 5223
        self.domain = DOMAIN
        self.pki = pki
        self.ca = pki / "ca.crt"
        self.settings = dict(settings)
        self.proc = None
        self.logf = None
        self.log_path = d / "server.log"
        self._n = 0
        self.users = {}
        self.pool = []

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def make_pool(self, n):
        """Accounts made before the server starts. fedgated loads its user directory from
        the store and re-reads it when the store's revision changes (polled about once a
        second), so an account added while it runs works only a moment later."""
        from concurrent.futures import ThreadPoolExecutor
        batch = []
        for _ in range(n):
            self._n += 1
            local = f"u{self._n}"
            batch.append((local, f"pw-{local}-Secret"))
        with ThreadPoolExecutor(4) as ex:  # fedgatectl runs fine side by side
            list(ex.map(lambda up: self.add_user(*up), batch))
        self.pool.extend(batch)

    def new_users(self, n, prefix="u"):
        """n fresh accounts, [(localpart, password)]: from the pool while it lasts, else
        added now (and waited for until the server accepts them)."""
        out = []
        while len(out) < n and self.pool:
            out.append(self.pool.pop(0))
        fresh = []
        while len(out) + len(fresh) < n:
            self._n += 1
            local = f"{prefix}{self._n}"
            pw = f"pw-{local}-Secret"
            self.add_user(local, pw)
            fresh.append((local, pw))
        for local, pw in fresh:
            self.wait_usable(local, pw)
        return out + fresh

    def wait_usable(self, local, pw, timeout=10):
        import xmppraw
        deadline = time.monotonic() + timeout
        while True:
            c = xmppraw.RawClient(self.host, self.tls_port, self.domain, self.ca, timeout=5,
                                  direct_tls=True)
            try:
                c.open()
                c.auth(local, pw, "PLAIN")
                return
            except xmppraw.AuthFailed:
                if time.monotonic() > deadline:
                    pytest.fail(f"account {local} not usable {timeout}s after it was added")
                time.sleep(0.2)
            finally:
                c.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _start_proc(self, cmd, env=None):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=base_env(env), cwd=self.dir,
                                     start_new_session=True)
        ok = wait_listening(self.host, self.port, 20, self.proc) and \
            wait_listening(self.host, self.tls_port, 5, self.proc)
        if not ok:
            self.stop(timeout=3)
            pytest.fail(f"{self.kind} did not accept connections on {self.host}:{self.port} "
                        f"and :{self.tls_port} within 20s; its log:\n{self.log_tail()}")

    def stop(self, timeout=10):
        """SIGTERM; returns a list of problems (slow or unclean exit, sanitizer reports)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.kind} did not exit within {timeout}s of SIGTERM")
                self.proc.kill()
                self.proc.wait(5)
        elif self.proc is not None:
            problems.append(f"{self.kind} had exited by itself (status {self.proc.returncode})")
        if self.proc is not None and self.proc.returncode not in (0, None) and not problems:
            problems.append(f"{self.kind} exited with status {self.proc.returncode} on SIGTERM")
        if self.logf:
            self.logf.close()
            self.logf = None
        log = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            if marker in log:
                i = log.index(marker)
                problems.append(f"sanitizer report in the {self.kind} log:\n{log[i:i + 3000]}")
                break
        return problems


class Fedgated(Server):
    kind = "fedgated"

    def __init__(self, *a):
        super().__init__(*a)
        self.conf = self.dir / "fedgate.conf"
        self.db = self.dir / "fg.db"
        self.write_conf()

    def write_conf(self):
        sections = {"c2s": {}, "limits": {}}
        for k, v in self.settings.items():
            sec, key = k.split(".", 1)
            if isinstance(v, bool):
                v = "true" if v else "false"
            sections.setdefault(sec, {})[key] = v
        text = (f"[server]\ndomains = {self.domain}\nstore = sqlite:{self.db}\n"
                f"state_dir = {self.dir}\nlog_level = debug\n"
                f"[listen]\nc2s = {self.host}:{self.port}\nc2s_tls = {self.host}:{self.tls_port}\n"
                f"s2s = off\ns2s_tls = off\nadmin = off\n"
                f"[tls]\ncert_dir = {self.pki}\n")
        for sec, kv in sections.items():
            if kv:
                text += f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
        self.conf.write_text(text)

    def ctl(self, *args, input=None, timeout=30):
        p = subprocess.run([str(CTL), "--config", str(self.conf), *map(str, args)], input=input,
                           capture_output=True, text=True, timeout=timeout, env=base_env(),
                           cwd=self.dir)
        return p

    def add_user(self, local, password):
        p = self.ctl("user", "add", f"{local}@{self.domain}", "--password-file", "-",
                     input=password + "\n")
        assert p.returncode == 0, f"fedgatectl user add {local}: rc={p.returncode} {p.stderr}"
        self.users[local] = password

    def start(self):
        for b in (CTL, DAEMON):
            if not os.access(b, os.X_OK):
                pytest.fail(f"{b} is not built (set FG_BUILD_DIR or run make)")
        self._start_proc([str(DAEMON), "--config", str(self.conf)])


class Prosody(Server):
    kind = "prosody"

    def __init__(self, *a):
        super().__init__(*a)
        self.cfg = self.dir / "prosody.cfg.lua"
        self.data = self.dir / "data"
        self.data.mkdir(exist_ok=True)
        (self.data / DOMAIN.replace(".", "%2e") / "accounts").mkdir(parents=True, exist_ok=True)
        s = self.settings
        opts = []
        if "limits.max_stanza_size" in s:
            n = max(10000, int(s["limits.max_stanza_size"]))
            opts += [f"c2s_stanza_size_limit = {n}", f"c2s_unauthed_stanza_size_limit = {n}"]
        if "c2s.idle_timeout" in s:
            opts.append(f"c2s_timeout = {int(s['c2s.idle_timeout'])}")
        if s.get("c2s.require_tls") is False:
            opts.append("c2s_require_encryption = false")
        crt, key = self.pki / f"{DOMAIN}.crt", self.pki / f"{DOMAIN}.key"
        self.cfg.write_text("\n".join([
            "daemonize = false", "run_as_root = true",
            f'pidfile = "{self.dir}/prosody.pid"', f'data_path = "{self.data}"',
            f'log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.log_path}" }} }}',
            f'interfaces = {{ "{self.host}" }}', "c2s_ports = { 5222 }",
            "c2s_direct_tls_ports = { 5223 }", "s2s_ports = { }", "http_ports = { }",
            "https_ports = { }", 'authentication = "internal_plain"',
            f'certificates = "{self.pki}"',
            'modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline", '
            '"posix" }',
            'modules_disabled = { "s2s" }',
            f'ssl = {{ certificate = "{crt}", key = "{key}" }}',
            f'c2s_direct_tls_ssl = {{ certificate = "{crt}", key = "{key}" }}',
            *opts,
            f'VirtualHost "{DOMAIN}"',
            f'  ssl = {{ certificate = "{crt}", key = "{key}" }}', ""]))

    def add_user(self, local, password):
        p = self.data / DOMAIN.replace(".", "%2e") / "accounts" / f"{local}.dat"
        lua = password.replace("\\", "\\\\").replace('"', '\\"')
        p.write_text(f'return {{\n\t["password"] = "{lua}";\n}};\n')
        self.users[local] = password

    def start(self):
        if not shutil.which("prosody"):
            pytest.skip("prosody is not installed")
        self._start_proc(["prosody", "-F", "--config", str(self.cfg)])


def make_server(tmp_path_factory, pki, module):
    addr = getattr(module, "ADDR")
    settings = getattr(module, "SETTINGS", {})
    d = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
    if KIND == "prosody":
        return Prosody(d, PROSODY_ADDR, pki, settings)
    return Fedgated(d, addr, pki, settings)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, pki, request):
    s = make_server(tmp_path_factory, pki, request.module)
    s.make_pool(getattr(request.module, "USER_POOL", 40))
    s.start()
    yield s
    problems = s.stop()
    if problems:
        pytest.fail("; ".join(problems) + f"\n(log: {s.log_path})", pytrace=False)


@pytest.fixture
def xmpp(srv):
    from slix import Harness
    h = Harness(srv)
    yield h
    h.close()


@pytest.fixture
def alive(srv):
    """After the test: the server must still be running."""
    yield
    assert srv.alive(), f"{srv.kind} exited during the test; log:\n{srv.log_tail()}"
