"""Interop with Prosody 0.12 as a partner (issue 5): fedgated's a.test and Prosody's p.test
exchange messages both ways over SASL EXTERNAL (XEP-0178), both certificates issued by the
test CA; and over dialback with TLS when Prosody does not trust our CA (TESTING.md: the
realistic self-signed partner). Skipped when prosody is not installed."""
import contextlib
import shutil
import subprocess
import time

import pytest

PW = "pw-pat-Secret"


class ProsodyNode:
    def __init__(self, kit, d, pki, resolver, cafile, secure):
        self.kit = kit
        self.dir, self.domain, self.host = d, "p.test", kit.HOSTS["p.test"]
        self.port, self.tls_port, self.ca = 5222, 5223, pki / "ca.crt"
        self.log_path = d / "prosody.log"
        data = d / "data"
        (data / "p%2etest" / "accounts").mkdir(parents=True)
        (data / "p%2etest" / "accounts" / "pat.dat").write_text(
            f'return {{\n\t["password"] = "{PW}";\n}};\n')
        crt, key = pki / "p.test.crt", pki / "p.test.key"
        ip, port = resolver.split("@")
        self.cfg = d / "prosody.cfg.lua"
        self.cfg.write_text("\n".join([
            "daemonize = false", "run_as_root = true", f'pidfile = "{d}/prosody.pid"',
            f'data_path = "{data}"',
            f'log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{self.log_path}" }} }}',
            f'interfaces = {{ "{self.host}" }}', f's2s_interfaces = {{ "{self.host}" }}',
            "c2s_ports = { 5222 }", "c2s_direct_tls_ports = { 5223 }", "s2s_ports = { 5269 }",
            "http_ports = { }", "https_ports = { }", 'authentication = "internal_plain"',
            "s2s_require_encryption = true",
            f"s2s_secure_auth = {'true' if secure else 'false'}",
            'modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", '
            '"posix" }',
            f'ssl = {{ certificate = "{crt}", key = "{key}", cafile = "{cafile}" }}',
            f'unbound = {{ resolvconf = false; hoststxt = false; forward = "{ip}@{port}"; '
            'options = { ["do-not-query-localhost:"] = "no"; '
            '["local-zone:"] = "test. transparent" } }',
            'VirtualHost "p.test"',
            f'  ssl = {{ certificate = "{crt}", key = "{key}", cafile = "{cafile}" }}', ""]))
        self.proc = None

    def start(self):
        self.logf = open(d_log := self.dir / "prosody.out", "ab")
        self.proc = subprocess.Popen(["prosody", "-F", "--config", str(self.cfg)],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=self.kit.base_env(),
                                     cwd=self.dir, start_new_session=True)
        if not self.kit.wait_listening(self.host, 5269, 20, self.proc):
            self.stop()
            pytest.fail(f"prosody did not start: {d_log.read_text(errors='replace')[-2000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()


@contextlib.contextmanager
def pair(kit, tmp_path_factory, pki, dns, cafile, secure):
    if not shutil.which("prosody"):
        pytest.skip("prosody is not installed")
    a = kit.Node(tmp_path_factory.mktemp("a"), "a.test", pki, dns)
    a.ok("partner", "new", "p.test", "--type", "federated")
    a.add_user("alice", "pw-alice-Secret")
    p = ProsodyNode(kit, tmp_path_factory.mktemp("prosody"), pki, dns, cafile, secure)
    p.start()
    a.start()
    try:
        yield a, p
    finally:
        p.stop()
        problems = a.stop()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def exchange(a, p):
    from slix import Harness
    h = Harness(a)
    try:
        async def run():
            h.srv = a
            ca = await h.login("alice", "pw-alice-Secret")
            h.srv = p
            cp = await h.login("pat", PW)
            ca.send_message(mto="pat@p.test", mbody="hello prosody", mtype="chat")
            await cp.wait_message(body="hello prosody", timeout=25)
            cp.send_message(mto="alice@a.test", mbody="hello fedgate", mtype="chat")
            await ca.wait_message(body="hello fedgate", timeout=25)
        h.run(run(), 80)
    finally:
        h.close()


def established(a):
    deadline = time.monotonic() + 10
    while True:
        doc = a.status("p.test")
        st = [s for s in doc["partners"][0]["streams"] if s["state"] == "established"]
        if {s["direction"] for s in st} == {"in", "out"}:
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.5)
    return st


def test_messages_with_prosody_over_sasl_external(kit, tmp_path_factory, pki, dns):
    with pair(kit, tmp_path_factory, pki, dns, pki / "ca.crt", True) as (a, p):
        exchange(a, p)
        st = established(a)
        assert all(s["auth"] == "sasl-external" and s["tls"] == "TLSv1.3" for s in st), st


def test_messages_with_prosody_over_dialback(kit, tmp_path_factory, pki, dns):
    """Prosody trusts another CA: it offers us no EXTERNAL and we dial back; a.test still
    trusts Prosody's certificate."""
    with pair(kit, tmp_path_factory, pki, dns, pki / "other-ca" / "ca.crt", False) as (a, p):
        exchange(a, p)
        st = established(a)
        out = [s for s in st if s["direction"] == "out"]
        assert out and all(s["auth"] == "dialback" and s["tls"] == "TLSv1.3" for s in out), st
        assert "event=s2s-auth dir=out local=a.test remote=p.test method=dialback " \
               "tls=TLSv1.3" in a.log()
