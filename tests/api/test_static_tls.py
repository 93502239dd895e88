"""The control panel's files (served from FG_ADMIN_WEB_DIR here) with safe path handling,
and HTTPS: an admin listener bound to a non-loopback address serves HTTPS only, with the
first hosted domain's certificate, or refuses to start. The HTTPS daemon binds 0.0.0.0
but is only ever reached through 127.0.0.1."""
import http.client
import os
import socket
import ssl
import subprocess

import pytest

from conftest import (DAEMON, PASSWORDS, ROLES, Gate, base_env, make_gate, port_open,
                      require_binaries)

IP = "127.0.0.47"
TLS_PORT = 15291
NOCERT_PORT = 15292


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    root = tmp_path_factory.mktemp("webroot")
    web = root / "web"
    (web / "sub").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>panel</title>")
    (web / "app.js").write_text("console.log('panel');")
    (web / "style.css").write_text("body{}")
    (web / "sub" / "index.html").write_text("sub")
    (web / "sub" / "page.html").write_text("page")
    (web / "data.bin").write_bytes(b"\0\1")
    (web / ".hidden").write_text("hidden")
    (root / "secret.txt").write_text("outside")
    os.symlink(root / "secret.txt", web / "link.txt")
    os.symlink("/etc", web / "etc")
    return web


@pytest.fixture(scope="module")
def gate(tmp_path_factory, web):
    g = make_gate(tmp_path_factory, IP, env={"FG_ADMIN_WEB_DIR": str(web)})
    yield g
    g.stop()


def raw_get(gate, path, method="GET"):
    c = http.client.HTTPConnection(gate.ip, gate.port, timeout=10)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        c.endheaders()
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


@pytest.mark.parametrize("path,ctype,body", [
    ("/", "text/html", b"<!doctype html><title>panel</title>"),
    ("/index.html", "text/html", b"<!doctype html><title>panel</title>"),
    ("/app.js", "text/javascript", b"console.log('panel');"),
    ("/style.css", "text/css", b"body{}"),
    ("/sub/", "text/html", b"sub"),
    ("/sub/page.html", "text/html", b"page"),
    ("/sub/%70age.html", "text/html", b"page"),
    ("/data.bin", "application/octet-stream", b"\0\1"),
])
def test_panel_files(gate, path, ctype, body):
    st, h, b = raw_get(gate, path)
    assert st == 200, path
    assert h["Content-Type"].split(";")[0] == ctype
    assert b == body
    assert h.get("X-Content-Type-Options") == "nosniff"
    assert "frame-ancestors 'none'" in h.get("Content-Security-Policy", "")


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt", "/sub/..%2f..%2fsecret.txt",
    "/.hidden", "/%2ehidden", "/link.txt", "/etc/passwd", "/sub", "/nothing.html", "//app.js",
    "/sub/./page.html", "/%00", "/app.js%00.html", "/%zz", "/sub\\page.html",
])
def test_unsafe_or_missing_paths_are_404(gate, path):
    st, h, b = raw_get(gate, path)
    assert st == 404, path
    assert b"outside" not in b and b"root:" not in b


def test_panel_methods(gate):
    st, h, b = raw_get(gate, "/", method="HEAD")
    assert st == 200 and b == b""
    st, h, b = raw_get(gate, "/", method="POST")
    assert st == 405 and "GET" in h["Allow"]


def test_api_is_not_shadowed_by_files(gate):
    assert raw_get(gate, "/api/v1/health")[0] == 200
    assert raw_get(gate, "/metrics")[0] == 401


# ---- HTTPS ------------------------------------------------------------------------------------
def make_cert(d):
    """A private CA and a certificate for home.test, written as DOMAIN.crt / DOMAIN.key."""
    tls = d / "tls"
    tls.mkdir()
    ca_key, ca = d / "ca.key", d / "ca.crt"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=fedgate test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", tls / "home.test.key", "-out", d / "leaf.csr", "-subj", "/CN=home.test")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:home.test,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", d / "leaf.csr", "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-out", tls / "home.test.crt", "-days", "2", "-extfile", ext)
    return ca


@pytest.fixture(scope="module")
def tls_gate(tmp_path_factory):
    require_binaries()
    d = tmp_path_factory.mktemp("tls")
    g = Gate(d, "127.0.0.1", TLS_PORT, listen=f"0.0.0.0:{TLS_PORT}", tls=True)
    g.ca = make_cert(d)
    for name, role in ROLES.items():
        g.add_admin(name, role, PASSWORDS[name])
    g.start()
    yield g
    g.stop()


def test_https_only_off_loopback(tls_gate):
    c = tls_gate.client()
    r = c.get("/health")
    assert r.status == 200 and r.json == {"status": "ok"}
    assert "max-age=" in (r.header("Strict-Transport-Security") or "")
    r = c.login("boss")
    assert r.status == 200
    cookie = [v for v in r.all_headers("Set-Cookie") if v.startswith("fedgate_session=")][0]
    assert "secure" in [a.strip().lower() for a in cookie.split(";")]
    assert c.post("/partners", {"domain": "tls.test"}).status == 201
    # plain HTTP gets no HTTP answer
    plain = http.client.HTTPConnection("127.0.0.1", TLS_PORT, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/api/v1/health")
        plain.getresponse().read()
    plain.close()


def test_tls_certificate_is_the_hosted_domains(tls_gate):
    ctx = ssl.create_default_context(cafile=str(tls_gate.ca))
    with socket.create_connection(("127.0.0.1", TLS_PORT), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="home.test") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")
            names = [v for k, v in t.getpeercert()["subjectAltName"] if k == "DNS"]
            assert "home.test" in names


def test_no_certificate_refuses_to_start(tmp_path):
    require_binaries()
    g = Gate(tmp_path, "127.0.0.1", NOCERT_PORT, listen=f"0.0.0.0:{NOCERT_PORT}")
    p = subprocess.run([str(DAEMON), "--config", str(g.conf)], capture_output=True, text=True,
                       timeout=30, env=base_env(), cwd=g.dir)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "home.test.crt" in out and "HTTPS" in out, out
    assert not port_open("127.0.0.1", NOCERT_PORT)
