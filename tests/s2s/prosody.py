"""Prosody 0.12 (Debian package) as the partner p.test, in one of its s2s security modes
(TESTING.md, "Prosody as a partner"). Used by test_prosody.py, test_prosody_types.py and
test_matrix.py; `kit` is the conftest module (Node, HOSTS, base_env, wait_listening).

Modes (MODES); but in "untrusted", Prosody presents p.test's leaf from the test PKI, which
a.test trusts.
- "cert": s2s_require_encryption = true, s2s_secure_auth = true, Prosody trusts our test
  CA: TLS always, SASL EXTERNAL accepted from us and used towards us; dialback only from a
  peer whose certificate verified.
- "dialback": s2s_require_encryption = true, s2s_secure_auth = false, Prosody trusts only
  the unrelated other-ca: TLS always, it never offers us EXTERNAL (our certificate does not
  verify for it), so we authenticate by dialback; it still uses EXTERNAL when we offer it.
- "optional": s2s_require_encryption = false, s2s_secure_auth = false, Prosody trusts our
  CA: STARTTLS offered and used when the peer can, the clear stream otherwise.
- "plain": s2s_allow_encryption = false (Prosody 0.12 mod_tls: no STARTTLS offered to or
  started with any server; c2s keeps its TLS), s2s_require_encryption = false,
  s2s_secure_auth = false: dialback over TCP only, a server without TLS.
- "untrusted": as "dialback" but the other way round: Prosody trusts our CA and presents a
  p.test certificate issued by the other-ca (pki/bad/p.test.crt), which a.test does not
  trust: we never offer it EXTERNAL and check its dialback keys with the authoritative
  server even over TLS (the realistic self-signed partner, seen from our side)."""
import shutil
import subprocess

import pytest

PW = "pw-pat-Secret"
DOMAIN = "p.test"

MODES = {
    # mode: (s2s_require_encryption, s2s_secure_auth, s2s_allow_encryption, trusts our CA,
    #        certificate a.test trusts)
    "cert": (True, True, True, True, True),
    "dialback": (True, False, True, False, True),
    "optional": (False, False, True, True, True),
    "plain": (False, False, False, True, True),
    "untrusted": (True, False, True, True, False),
}


def lua_bool(v):
    return "true" if v else "false"


def require_prosody():
    if not shutil.which("prosody"):
        pytest.skip("prosody is not installed")


class ProsodyNode:
    """One Prosody serving p.test on kit.HOSTS["p.test"] (c2s 5222/5223, s2s 5269), with
    the account pat (password PW) and its own data directory, log and pid file. Clients
    verify its c2s certificate with self.ca (the other-ca in mode "untrusted")."""
    kind = "prosody"

    def __init__(self, kit, d, pki, resolver, mode="cert"):
        if mode not in MODES:
            raise ValueError(f"unknown Prosody mode {mode!r}")
        require, secure, allow, trusts_us, good_cert = MODES[mode]
        self.kit, self.mode = kit, mode
        self.dir, self.domain, self.host = d, DOMAIN, kit.HOSTS[DOMAIN]
        self.port, self.tls_port = 5222, 5223
        self.ca = pki / "ca.crt" if good_cert else pki / "other-ca" / "ca.crt"
        self.log_path = d / "prosody.log"
        self.out_path = d / "prosody.out"
        self.accounts = d / "data" / "p%2etest" / "accounts"
        self.accounts.mkdir(parents=True)
        self.add_user("pat", PW)
        cafile = pki / "ca.crt" if trusts_us else pki / "other-ca" / "ca.crt"
        leaf = pki if good_cert else pki / "bad"
        crt, key = leaf / "p.test.crt", leaf / "p.test.key"
        ssl = f'ssl = {{ certificate = "{crt}", key = "{key}", cafile = "{cafile}" }}'
        ip, port = resolver.split("@")
        self.cfg = d / "prosody.cfg.lua"
        lines = [
            "daemonize = false", "run_as_root = true", f'pidfile = "{d}/prosody.pid"',
            f'data_path = "{d / "data"}"',
            f'log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{self.log_path}" }} }}',
            f'interfaces = {{ "{self.host}" }}', f's2s_interfaces = {{ "{self.host}" }}',
            "c2s_ports = { 5222 }", "c2s_direct_tls_ports = { 5223 }", "s2s_ports = { 5269 }",
            "http_ports = { }", "https_ports = { }", 'authentication = "internal_plain"',
            f"s2s_require_encryption = {lua_bool(require)}",
            f"s2s_secure_auth = {lua_bool(secure)}",
        ]
        if not allow:
            lines.append("s2s_allow_encryption = false")
        lines += [
            'modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", '
            '"posix" }',
            ssl,
            f'unbound = {{ resolvconf = false; hoststxt = false; forward = "{ip}@{port}"; '
            'options = { ["do-not-query-localhost:"] = "no"; '
            '["local-zone:"] = "test. transparent" } }',
            f'VirtualHost "{DOMAIN}"', f"  {ssl}", ""]
        self.cfg.write_text("\n".join(lines))
        self.proc = None
        self.logf = None

    def add_user(self, local, pw):
        """An account in Prosody's internal_plain store (read at login: works while running).
        local must be letters and digits (other characters are %-encoded in file names)."""
        assert local.isalnum(), local
        (self.accounts / f"{local.lower()}.dat").write_text(
            f'return {{\n\t["password"] = "{pw}";\n}};\n')

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self):
        self.logf = open(self.out_path, "ab")
        self.proc = subprocess.Popen(["prosody", "-F", "--config", str(self.cfg)],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=self.kit.base_env(),
                                     cwd=self.dir, start_new_session=True)
        if not (self.kit.wait_listening(self.host, 5269, 20, self.proc) and
                self.kit.wait_listening(self.host, 5222, 5, self.proc)):
            self.stop()
            pytest.fail(f"prosody ({self.mode}) did not start: "
                        f"{self.out_path.read_text(errors='replace')[-2000:]}"
                        f"{self.log()[-2000:]}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None
