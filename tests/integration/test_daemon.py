"""fedgated as a daemon skeleton (issue 3, SPEC section 7): --check-config, start-up log in
the key=value format, heartbeat, the dialback secret made at first start, noticing
changes made by fedgatectl within 2 seconds, and a clean exit on SIGTERM and SIGINT.
Every listener is off: the tests open no sockets."""
import datetime
import json
import shutil
import signal
import subprocess
import time

import pytest

from fgcli import DAEMON, LOG_LINE, base_env, require
from fgcli import BAD_CONFIGS, assert_names_file_line_key

START_TIMEOUT = 10


def check_config(fg):
    require(DAEMON)
    try:
        p = subprocess.run([str(DAEMON), "--config", str(fg.conf), "--check-config"],
                           capture_output=True, text=True, timeout=30, env=base_env(),
                           cwd=fg.dir, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("fedgated --check-config did not exit within 30 s")
    return p.returncode, p.stdout, p.stderr


def started(d):
    line = d.wait_for(lambda l: "event=daemon-start" in l, START_TIMEOUT)
    assert line, f"no event=daemon-start within {START_TIMEOUT}s; log:\n{d.log()}"
    assert d.proc.poll() is None, f"fedgated exited ({d.proc.returncode}):\n{d.log()}"
    return line


def test_check_config_good(fg):
    rc, out, err = check_config(fg)
    assert rc == 0, err
    # validating does not start anything: no daemon-start
    assert "event=daemon-start" not in out + err


@pytest.mark.parametrize("name,text,line,key", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_check_config_bad(fg, name, text, line, key):
    fg.conf.write_text(text(fg))
    rc, out, err = check_config(fg)
    assert rc == 1, f"{name}: exit {rc}: {err!r}"
    assert_names_file_line_key(out + err, fg.conf, line, key)


def test_check_config_missing_file(fg, daemon_bin):
    missing = fg.dir / "missing.conf"
    p = subprocess.run([str(DAEMON), "--config", str(missing), "--check-config"],
                       capture_output=True, text=True, timeout=30, env=base_env())
    assert p.returncode == 1
    assert str(missing) in p.stdout + p.stderr


def test_daemon_refuses_bad_config_without_check(fg, daemon_factory):
    fg.conf.write_text(BAD_CONFIGS[0][1](fg))
    d = daemon_factory()
    try:
        rc = d.proc.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("fedgated kept running with a bad configuration")
    assert rc == 1
    assert str(fg.conf) in d.log() and "colour" in d.log()


def test_daemon_unwritable_store_exit_1(fg, daemon_factory):
    fg.write_conf(store="sqlite:/nonexistent-dir/x.db")
    d = daemon_factory()
    try:
        rc = d.proc.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("fedgated kept running without a store")
    assert rc == 1
    assert "/nonexistent-dir/x.db" in d.log()


def test_start_log_format_and_sigterm(fg, daemon_factory):
    d = daemon_factory()
    line = started(d)
    assert LOG_LINE.match(line), f"not in the log format of SPEC section 7: {line!r}"
    assert line.split()[1] == "info"
    ts = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
    assert abs(datetime.datetime.now(datetime.timezone.utc) - ts) < datetime.timedelta(minutes=1)
    # stays in the foreground: the process we started is the daemon and keeps running
    time.sleep(0.5)
    assert d.proc.poll() is None
    assert d.stop(signal.SIGTERM) == 0
    stop = [l for l in d.lines() if "event=daemon-stop" in l]
    assert stop, f"no event=daemon-stop:\n{d.log()}"
    for l in d.lines():
        assert LOG_LINE.match(l), f"log line not in the SPEC format: {l!r}"


def test_sigint_exits_0(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    assert d.stop(signal.SIGINT) == 0
    assert any("event=daemon-stop" in l for l in d.lines()), d.log()


def find_heartbeat(fg):
    """The daemon's heartbeat as a user can see it: `partner status --json` once it exists,
    else the value the store keeps for it."""
    r = fg.run("--json", "partner", "status")
    if r.rc == 0:
        doc = r.json
        return ("status", doc["daemon"]["heartbeat"], doc["daemon"]["running"])
    vals = [v for v in fg.db_values_near("heartbeat")]
    return ("store", tuple(vals), None) if vals else None


def test_heartbeat(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    first = None
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not first:
        first = find_heartbeat(fg)
        time.sleep(0.2)
    assert first, "no heartbeat in `partner status` or in the store 3 s after start"
    if first[0] == "status":
        assert first[2] is True
    # it is renewed every 2 seconds
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        now = find_heartbeat(fg)
        if now and now[1] != first[1]:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"heartbeat not renewed within 6 s: {first}")
    assert d.stop() == 0


def test_notices_partner_changes_within_2s(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    for args, ev in ((("partner", "new", "x.test"), "new"),
                     (("partner", "set", "x.test", "--description", "changed"), "set"),
                     (("partner", "remove", "x.test"), "remove")):
        n = len(d.lines())
        fg.ok(*args)
        t0 = time.monotonic()
        line = d.wait_for(lambda l: "event=config-change" in l and
                          "partner=x.test" in l.split(), 2.5, start_line=n)
        assert line, f"no config-change for {ev} within 2 s:\n{d.log()}"
        assert time.monotonic() - t0 <= 2.5
        assert LOG_LINE.match(line), line
    assert d.stop() == 0


def test_notices_idn_partner_and_other_changes(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    n = len(d.lines())
    fg.ok("partner", "new", "Bücher.test")
    line = d.wait_for(lambda l: "event=config-change" in l, 2.5, start_line=n)
    assert line and ("partner=xn--bcher-kva.test" in line or "partner=bücher.test" in line), \
        d.log()
    # a gateway change is noticed too
    n = len(d.lines())
    fg.ok("gateway", "set", "--keepalive-interval", "120")
    assert d.wait_for(lambda l: "event=config-change" in l, 2.5, start_line=n), d.log()
    assert d.stop() == 0


def test_refused_change_is_not_a_config_change(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    n = len(d.lines())
    assert fg.run("partner", "new", "y.test", "--tls", "not-supported").rc == 3
    time.sleep(2.5)
    assert not any("event=config-change" in l for l in d.lines()[n:]), d.log()
    assert d.stop() == 0


def test_dialback_secret_made_at_first_start(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    secret = fg.dialback_secret()
    assert secret, "no dialback secret in the store after the first start"
    assert len(secret) >= 32, "a dialback secret of at least 128 bits"
    shown = fg.run("gateway", "show").out + fg.run("--json", "gateway", "show").out
    assert secret not in shown
    assert "secret" not in json.loads(fg.run("--json", "gateway", "show").out)["gateway"]
    assert d.stop() == 0
    assert secret not in d.log(), "the dialback secret appears in the log"
    # a restart keeps it
    d2 = daemon_factory()
    started(d2)
    assert fg.dialback_secret() == secret
    assert d2.stop() == 0
    # rotating replaces it, and the audit shows only that it happened
    rc, doc, err = fg.jrun("gateway", "rotate-dialback-secret")
    assert rc == 0, err
    assert doc == {"rotated": True}
    new = fg.dialback_secret()
    assert new and new != secret
    audit = fg.run("--json", "audit").out
    assert secret not in audit and new not in audit
    assert json.loads(audit)["audit"][0]["action"] == "gateway.rotate-dialback-secret"


def test_log_file(fg, daemon_factory):
    logfile = fg.dir / "fedgated.log"
    fg.write_conf(server_extra=f"log_file = {logfile}\n")
    d = daemon_factory()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if logfile.exists() and "event=daemon-start" in logfile.read_text():
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no daemon-start in log_file; stderr:\n{d.log()}")
    assert d.stop() == 0
    assert "event=daemon-start" not in d.log(), "logged to standard error despite log_file"
    assert "event=daemon-stop" in logfile.read_text()


def test_log_level_warn_hides_info(fg, daemon_factory):
    fg.write_conf(server_extra="log_level = warn\n")
    d = daemon_factory()
    time.sleep(1.5)
    assert d.proc.poll() is None, d.log()
    fg.ok("partner", "new", "quiet.test")
    time.sleep(1)
    assert d.stop() == 0
    assert not [l for l in d.lines() if " info " in l or " debug " in l], d.log()


def test_two_changes_in_quick_succession_both_noticed(fg, daemon_factory):
    d = daemon_factory()
    started(d)
    n = len(d.lines())
    fg.ok("partner", "new", "q1.test")
    fg.ok("partner", "new", "q2.test")
    for dom in ("q1.test", "q2.test"):
        assert d.wait_for(lambda l: "event=config-change" in l and f"partner={dom}" in l.split(),
                          2.5, start_line=n), f"{dom} not noticed:\n{d.log()}"
    assert d.stop() == 0


# ---- --check-config also checks the certificates of the hosted domains -------------------------
def make_cert(tls_dir, domain, name=None):
    """A self-signed EC certificate for name (default: domain) as DOMAIN.crt / DOMAIN.key."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl command not installed")
    name = name or domain
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", str(tls_dir / f"{domain}.key"),
                    "-out", str(tls_dir / f"{domain}.crt"), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture
def with_c2s(fg):
    """A configuration with the c2s listener on (127.0.0.1; --check-config binds nothing)
    and a cert_dir."""
    tls = fg.dir / "tls"
    tls.mkdir()
    fg.write_conf()
    text = fg.conf.read_text().replace("c2s = off", "c2s = 127.0.0.1:15222")
    fg.conf.write_text(text + f"[tls]\ncert_dir = {tls}\n")
    return tls


def test_check_config_good_certificates(fg, with_c2s):
    make_cert(with_c2s, "home.test")
    make_cert(with_c2s, "home2.test")
    rc, out, err = check_config(fg)
    assert rc == 0, err


def test_check_config_missing_certificate(fg, with_c2s):
    make_cert(with_c2s, "home.test")
    rc, out, err = check_config(fg)
    assert rc == 1
    assert "home2.test" in out + err


def test_check_config_key_does_not_match(fg, with_c2s):
    make_cert(with_c2s, "home.test")
    make_cert(with_c2s, "home2.test")
    (with_c2s / "home2.test.key").write_bytes((with_c2s / "home.test.key").read_bytes())
    rc, out, err = check_config(fg)
    assert rc == 1
    assert "home2.test" in out + err


def test_check_config_certificate_for_another_name(fg, with_c2s):
    make_cert(with_c2s, "home.test")
    make_cert(with_c2s, "home2.test", name="elsewhere.test")
    rc, out, err = check_config(fg)
    assert rc == 1
    assert "home2.test" in out + err


def test_check_config_garbage_key(fg, with_c2s):
    make_cert(with_c2s, "home.test")
    make_cert(with_c2s, "home2.test")
    (with_c2s / "home.test.key").write_text("not a key\n")
    rc, out, err = check_config(fg)
    assert rc == 1
    assert "home.test.key" in out + err
