"""Logging in (RFC 6120 sections 5-7, XEP-0368): STARTTLS and direct TLS, SCRAM-SHA-256,
SCRAM-SHA-1 and PLAIN with the right and the wrong password, unknown users, the
[limits] auth_attempts limit, stream features and resource binding."""
import socket
import ssl
import time
import warnings

import pytest

import xmppraw as xr
from xmppraw import NS_BIND, NS_SASL, NS_STREAM, NS_TLS, RawClient, q

ADDR = "127.0.0.61"
SETTINGS = {"limits.auth_attempts": 3}
USER_POOL = 60
MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
TRANSPORTS = ["starttls", "direct-tls"]


def raw(srv, direct_tls=False, **kw):
    port = srv.tls_port if direct_tls else srv.port
    return RawClient(srv.host, port, srv.domain, srv.ca, direct_tls=direct_tls, **kw)


# ---- slixmpp ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHS)
def test_login_right_password(srv, xmpp, mech, transport, alive):
    (user, pw), = srv.new_users(1)

    async def body():
        c = await xmpp.login(user, pw, mechs=[mech], direct_tls=transport == "direct-tls",
                             presence=False, roster=False)
        assert c.mech_used == mech
        assert c.boundjid.bare == f"{user}@{srv.domain}"
        assert c.boundjid.resource, "the server bound no resource"
        # the session is usable: a ping to the server is answered (XEP-0199)
        await c["xep_0199"].ping(jid=srv.domain, timeout=5)
    xmpp.run(body(), 30)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_login_with_slixmpp_default_choice(srv, xmpp, transport, alive):
    """No restriction: slixmpp picks the strongest mechanism offered (a -PLUS one when the
    server offers channel binding). An ordinary client must get in."""
    (user, pw), = srv.new_users(1)

    async def body():
        c = await xmpp.login(user, pw, direct_tls=transport == "direct-tls", presence=False,
                             roster=False)
        assert c.boundjid.bare == f"{user}@{srv.domain}"
        print(f"slixmpp chose {c.mech_used} over {transport}; failures first: "
              f"{c.failed_auths}")
        # slixmpp 1.8 knows only tls-unique, which TLS 1.3 does not have: its -PLUS
        # attempts may fail on the binding type (doc/c2s-decisions.md), nothing else
        assert all(t == "unsupported channel binding type" for _, t in c.failed_auths), \
            c.failed_auths
    xmpp.run(body(), 30)


@pytest.mark.fedgate_only("fedgate's log")
def test_successful_login_logs_no_auth_failure(srv, xmpp, alive):
    """Issue 4: logs a person can act on. An ordinary client that logs in with the right
    password (slixmpp trying -PLUS first, which cannot work under TLS 1.3) must not
    leave 'authentication failed' warnings behind."""
    (user, pw), = srv.new_users(1)

    async def body():
        await xmpp.login(user, pw, presence=False, roster=False)
    xmpp.run(body(), 30)
    time.sleep(0.3)
    lines = [l for l in srv.log().splitlines()
             if f"user={user}@" in l and "auth-failed" in l]
    assert not lines, "a successful login logged as failed:\n" + "\n".join(lines)


@pytest.mark.fedgate_only("doc/c2s-decisions.md: -PLUS type failures do not count")
def test_plus_with_unavailable_binding_does_not_count(srv, alive):
    """Under TLS 1.3 a -PLUS attempt with tls-unique fails on the binding type; such
    failures say nothing about the password and do not count toward auth_attempts (3)."""
    (user, pw), = srv.new_users(1)
    c = raw(srv)
    try:
        c.open()
        c.starttls()
        assert c.sock.version() == "TLSv1.3"
        assert "SCRAM-SHA-256-PLUS" in c.mechanisms(), c.mechanisms()
        for _ in range(4):
            s = xr.Scram(user, pw, "SHA-256", gs2="p=tls-unique,,")
            with pytest.raises(xr.AuthFailed):
                c.auth(user, pw, "SCRAM-SHA-256-PLUS", scram=s)
        c.auth(user, pw, "SCRAM-SHA-256")
        c.open()
        assert c.bind()
    finally:
        c.close()


@pytest.mark.fedgate_only("Prosody 0.12 offers no -PLUS mechanism here")
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_scram_plus_tls_unique_over_tls12(srv, xmpp, mech, alive):
    """RFC 5802 / RFC 5929: over TLS 1.2, SCRAM-*-PLUS with tls-unique channel binding
    (what slixmpp sends) succeeds."""
    (user, pw), = srv.new_users(1)

    async def body():
        c = xmpp.client(user, pw, mechs=[mech])
        c.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        await xmpp.start(c)
        assert c.mech_used == mech
        assert not c.failed_auths, c.failed_auths
    xmpp.run(body(), 30)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHS)
def test_login_wrong_password(srv, xmpp, mech, transport, alive):
    (user, pw), = srv.new_users(1)

    async def body():
        with pytest.raises(AssertionError) as ei:
            await xmpp.login(user, pw + "x", mechs=[mech],
                             direct_tls=transport == "direct-tls", presence=False,
                             roster=False)
        c = xmpp.clients[-1]
        assert c.failed_auths, f"no SASL failure seen: {ei.value}"
        assert c.failed_auths[0][0] == "not-authorized", c.failed_auths
        assert not c.session.done() or c.session.exception() is not None
        await c.wait_gone(5)
    xmpp.run(body(), 30)


def test_unknown_user_fails_with_slixmpp(srv, xmpp, alive):
    async def body():
        with pytest.raises(AssertionError):
            await xmpp.login("nosuchuser", "whatever-pw", mechs=["SCRAM-SHA-256"],
                             presence=False, roster=False)
        c = xmpp.clients[-1]
        assert c.failed_auths and c.failed_auths[0][0] == "not-authorized", c.failed_auths
    xmpp.run(body(), 30)


# ---- raw client ------------------------------------------------------------------------------
@pytest.mark.fedgate_only("Prosody 0.12 fails unknown users at the first SCRAM step")
@pytest.mark.parametrize("mech", MECHS)
def test_unknown_user_fails_like_wrong_password(srv, mech, alive):
    """Same SASL failure (condition and text) at the same step of the exchange, so that
    nobody can tell from the answers whether an account exists."""
    (user, pw), = srv.new_users(1)
    outcomes = []
    for u, p in ((user, pw + "-wrong"), ("nobody-here", "pw-nobody")):
        c = raw(srv)
        try:
            c.open()
            c.starttls()
            with pytest.raises(xr.AuthFailed) as ei:
                c.auth(u, p, mech)
            outcomes.append((ei.value.condition, ei.value.text, ei.value.step))
        finally:
            c.close()
    assert outcomes[0][0] == "not-authorized", outcomes
    assert outcomes[0] == outcomes[1], (
        f"wrong password {outcomes[0]} vs unknown user {outcomes[1]}")


def test_retry_after_failure_on_same_stream(srv, alive):
    """RFC 6120 6.4.5: a client may retry after a SASL failure (within the limit)."""
    (user, pw), = srv.new_users(1)
    c = raw(srv, direct_tls=True)
    try:
        c.open()
        with pytest.raises(xr.AuthFailed):
            c.auth(user, "not-the-password", "SCRAM-SHA-1")
        c.auth(user, pw, "SCRAM-SHA-256")
        c.open()
        assert c.bind("retry").endswith("/retry")
    finally:
        c.close()


@pytest.mark.fedgate_only("[limits] auth_attempts")
def test_auth_attempts_limit_closes_connection(srv, alive):
    """[limits] auth_attempts = 3: after the third failed exchange the server ends the
    connection; before it the stream stays usable."""
    (user, pw), = srv.new_users(1)
    c = raw(srv)
    try:
        c.open()
        c.starttls()
        for i, mech in enumerate(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"], 1):
            with pytest.raises(xr.AuthFailed) as ei:
                c.auth(user, f"wrong-{i}", mech)
            assert ei.value.condition == "not-authorized"
        # the third failure ends it: stream error (fedgate: policy-violation) and close
        try:
            cond, _ = c.expect_stream_error(5)
            assert cond == "policy-violation", cond
        except AssertionError as e:
            if "without a stream error" not in str(e):
                raise
        assert c.eof
        # a new connection with the right password still gets in
        c2 = raw(srv)
        try:
            assert c2.login(user, pw, "SCRAM-SHA-1", presence=False).startswith(user + "@")
        finally:
            c2.close()
    finally:
        c.close()


def test_stream_features(srv, alive):
    """Before TLS: STARTTLS offered (TLS required by default), no way to log in yet;
    after TLS: SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN, no STARTTLS; after SASL: bind."""
    (user, pw), = srv.new_users(1)
    c = raw(srv)
    try:
        f = c.open()
        assert c.header is not None
        assert c.header.tag == q("stream", NS_STREAM)
        assert c.header.get("from") == srv.domain, c.header.attrib
        assert c.header.get("id"), "the stream header has no id (RFC 6120 4.7.3)"
        assert c.header.get("version") == "1.0"
        assert f.find(q("starttls", NS_TLS)) is not None, c.transcript()
        assert "PLAIN" not in c.mechanisms(), "PLAIN offered before TLS"
        f = c.starttls()
        assert f.find(q("starttls", NS_TLS)) is None, "STARTTLS offered again under TLS"
        mechs = c.mechanisms()
        for m in MECHS:
            assert m in mechs, f"{m} not offered: {mechs}"
        c.auth(user, pw, "SCRAM-SHA-256")
        f = c.open()
        assert f.find(q("bind", NS_BIND)) is not None, c.transcript()
        assert f.find(q("mechanisms", NS_SASL)) is None, "SASL offered again after success"
    finally:
        c.close()


@pytest.mark.fedgate_only("issue 4: pre-approval advertised")
def test_preapproval_feature_advertised(srv, alive):
    """RFC 6121 3.4: a server that supports pre-approval advertises
    <sub xmlns='urn:xmpp:features:pre-approval'/> (issue 4 says fedgate does)."""
    (user, pw), = srv.new_users(1)
    c = raw(srv)
    try:
        c.open()
        c.starttls()
        c.auth(user, pw, "SCRAM-SHA-1")
        f = c.open()
        assert f.find(q("sub", xr.NS_PREAPPROVAL)) is not None, c.transcript()
    finally:
        c.close()


def test_auth_before_starttls_is_refused(srv, alive):
    """With TLS required, SASL before STARTTLS must not succeed (a SASL failure such as
    <encryption-required/>, or a stream error)."""
    (user, pw), = srv.new_users(1)
    c = raw(srv)
    try:
        c.open()
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
               f"{xr.b64(xr.plain_initial(user, pw))}</auth>")
        try:
            el = c.next(5)
            assert el.tag == q("failure", NS_SASL), f"answer to <auth/> before TLS: {c.transcript()}"
        except xr.StreamError:
            pass
        except xr.StreamClosed:
            pass
    finally:
        c.close()


def test_stanza_before_auth_is_not_authorized(srv, alive):
    """RFC 6120 4.9.3.12: stanzas before authentication get <not-authorized/>."""
    c = raw(srv)
    try:
        c.open()
        c.starttls()
        c.send(f"<message to='someone@{srv.domain}'><body>hi</body></message>")
        if srv.kind == "prosody":  # Prosody answers with a stanza error instead
            el = c.next(5)
            assert el.get("type") == "error", c.transcript()
            return
        cond, _ = c.expect_stream_error(5)
        assert cond == "not-authorized"
    finally:
        c.close()


def test_server_generated_resource(srv, alive):
    """RFC 6120 7.6: a bind without a resource gets one made by the server."""
    (user, pw), = srv.new_users(1)
    c = raw(srv)
    try:
        jid = c.login(user, pw, presence=False)
        bare, _, res = jid.partition("/")
        assert bare == f"{user}@{srv.domain}" and res, jid
    finally:
        c.close()


def test_client_chosen_resource(srv, alive):
    (user, pw), = srv.new_users(1)
    c = raw(srv, direct_tls=True)
    try:
        assert c.login(user, pw, "PLAIN", resource="laptop", presence=False) == \
            f"{user}@{srv.domain}/laptop"
    finally:
        c.close()


def test_direct_tls_with_alpn(srv, alive):
    """XEP-0368: clients offer ALPN 'xmpp-client' on the direct TLS port."""
    (user, pw), = srv.new_users(1)
    s = socket.create_connection((srv.host, srv.tls_port), timeout=10)
    ctx = xr.tls_context(srv.ca)
    ctx.set_alpn_protocols(["xmpp-client"])
    t = ctx.wrap_socket(s, server_hostname=srv.domain)
    assert t.selected_alpn_protocol() in (None, "xmpp-client")
    assert t.version() in ("TLSv1.2", "TLSv1.3"), t.version()
    t.close()


def test_tls_1_1_refused(srv, alive):
    """Issue 4: TLS 1.2 minimum."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ssl.SSLError, ValueError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1 at all")
    s = socket.create_connection((srv.host, srv.tls_port), timeout=10)
    try:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)) as ei:
            t = ctx.wrap_socket(s, server_hostname=srv.domain)
            t.close()
        if "NO_PROTOCOLS_AVAILABLE" in str(ei.value) or "no protocols available" in str(ei.value):
            pytest.skip("this OpenSSL cannot offer TLS 1.1 at all")
    finally:
        s.close()


# ---- SASL details (RFC 6120 6.3-6.5, RFC 5802, RFC 4616) ------------------------------------------
def starttlsed(srv):
    c = raw(srv)
    c.open()
    c.starttls()
    return c


def test_plain_with_authzid_of_another_user_is_refused(srv, alive):
    """RFC 6120 6.3.8 / 6.5.6: authenticating as alice while asking to act as bob must
    not make the session bob's (<invalid-authzid/> or <not-authorized/>)."""
    (a, ap), (b, _) = srv.new_users(2)
    c = starttlsed(srv)
    try:
        try:
            c.auth(a, ap, "PLAIN", authzid=f"{b}@{srv.domain}")
        except xr.AuthFailed as e:
            assert e.condition in ("invalid-authzid", "not-authorized"), e
            return
        c.open()
        jid = c.bind()
        assert not jid.startswith(f"{b}@"), f"became the other user: bound as {jid}"
        if srv.kind == "prosody":
            return  # Prosody 0.12 ignores the authzid: the session is the user's own
        raise AssertionError(f"authzid ignored (RFC 6120 6.3.8 wants <invalid-authzid/>); "
                             f"bound as {jid}")
    finally:
        c.close()


def test_scram_with_authzid_of_another_user_is_refused(srv, alive):
    (a, ap), (b, _) = srv.new_users(2)
    c = starttlsed(srv)
    try:
        s = xr.Scram(a, ap, "SHA-1", gs2=f"n,a={b}@{srv.domain},")
        try:
            c.auth(a, ap, "SCRAM-SHA-1", scram=s)
        except xr.AuthFailed as e:
            assert e.condition in ("invalid-authzid", "not-authorized"), e
            return
        c.open()
        jid = c.bind()
        assert not jid.startswith(f"{b}@"), f"became the other user: bound as {jid}"
        if srv.kind == "prosody":
            return  # Prosody 0.12 ignores the authzid: the session is the user's own
        raise AssertionError(f"authzid ignored (RFC 6120 6.3.8 wants <invalid-authzid/>); "
                             f"bound as {jid}")
    finally:
        c.close()


def test_plain_with_own_authzid(srv, alive):
    """An authzid equal to the user's own bare JID is harmless: either accepted (and the
    session is the user's) or refused."""
    (a, ap), = srv.new_users(1)
    c = starttlsed(srv)
    try:
        try:
            c.auth(a, ap, "PLAIN", authzid=f"{a}@{srv.domain}")
        except xr.AuthFailed as e:
            assert e.condition in ("invalid-authzid", "not-authorized"), e
            return
        c.open()
        assert c.bind().startswith(f"{a}@{srv.domain}/")
    finally:
        c.close()


@pytest.mark.fedgate_only("Prosody 0.12 offers no -PLUS mechanism here")
def test_scram_downgrade_flag_y_is_refused_when_plus_is_offered(srv, alive):
    """RFC 5802 section 6: a client that could bind channels but believes the server
    cannot sends gs2 flag 'y'. When the server did offer -PLUS, that means someone
    stripped it: the server MUST fail the authentication."""
    (a, ap), = srv.new_users(1)
    # over TLS 1.2, where tls-unique is on offer (under TLS 1.3 fedgate accepts 'y' from
    # tls-unique-only clients: doc/c2s-decisions.md)
    c = RawClient(srv.host, srv.port, srv.domain, srv.ca, tls_max=ssl.TLSVersion.TLSv1_2)
    try:
        c.open()
        c.starttls()
        assert c.sock.version() == "TLSv1.2"
        assert any(m.endswith("-PLUS") for m in c.mechanisms()), c.mechanisms()
        with pytest.raises(xr.AuthFailed):
            c.auth(a, ap, "SCRAM-SHA-256", scram=xr.Scram(a, ap, "SHA-256", gs2="y,,"))
    finally:
        c.close()


def test_scram_channel_binding_attribute_must_match_gs2_header(srv, alive):
    """RFC 5802 section 5.1: c= is the base64 of the gs2 header sent first; a different
    one fails."""
    (a, ap), = srv.new_users(1)
    c = starttlsed(srv)
    try:
        with pytest.raises(xr.AuthFailed):
            c.auth(a, ap, "SCRAM-SHA-1",
                   scram=xr.Scram(a, ap, "SHA-1", gs2="n,,", cbind_gs2=f"n,a={a}@{srv.domain},"))
    finally:
        c.close()


def test_scram_iteration_count(srv, alive):
    """RFC 7677 section 4: at least 4096 iterations."""
    (a, ap), = srv.new_users(1)
    c = starttlsed(srv)
    try:
        c.auth(a, ap, "SCRAM-SHA-256")
        assert c.last_scram.iterations >= 4096, c.last_scram.iterations
    finally:
        c.close()


@pytest.mark.parametrize("case", ["bad-base64", "abort", "response-without-auth",
                                  "unknown-mechanism"])
def test_sasl_protocol_errors(srv, case, alive):
    """RFC 6120 6.4/6.5: each gets a SASL <failure/> (incorrect-encoding, aborted,
    malformed-request or a stream error, invalid-mechanism), never <success/>; after
    it, a correct exchange on the same stream still succeeds."""
    (a, ap), = srv.new_users(1)
    c = starttlsed(srv)
    want = {"bad-base64": {"incorrect-encoding", "malformed-request", "not-authorized"},
            "abort": {"aborted"},
            "response-without-auth": {"malformed-request", "not-authorized"},
            "unknown-mechanism": {"invalid-mechanism"}}[case]
    try:
        if case == "bad-base64":
            c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!not base64***</auth>")
        elif case == "abort":
            s = xr.Scram(a, ap, "SHA-1")
            c.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{xr.b64(s.first())}</auth>")
            assert c.next().tag == q("challenge", NS_SASL), c.transcript()
            c.send(f"<abort xmlns='{NS_SASL}'/>")
        elif case == "response-without-auth":
            c.send(f"<response xmlns='{NS_SASL}'>{xr.b64(b'x')}</response>")
        else:
            c.send(f"<auth xmlns='{NS_SASL}' mechanism='X-NOT-A-MECH'>=</auth>")
        try:
            el = c.next(5)
        except xr.StreamError as e:
            if case == "response-without-auth":
                return  # closing the stream is also reasonable here
            raise AssertionError(f"stream error instead of a SASL failure: {e}") from None
        assert el.tag == q("failure", NS_SASL), c.transcript()
        cond, _ = xr.sasl_failure_condition(el)
        assert cond in want, f"<{cond}/>, wanted one of {want}"
        c.auth(a, ap, "SCRAM-SHA-1")
        c.open()
        assert c.bind()
    finally:
        c.close()


# ---- account changes while the server runs (fedgatectl) -----------------------------------------
def _can_auth(srv, user, pw, mech):
    c = starttlsed(srv)
    try:
        c.auth(user, pw, mech)
        return True
    except xr.AuthFailed:
        return False
    finally:
        c.close()


def _until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.fedgate_only("fedgatectl")
def test_password_change_and_removal_take_effect(srv, alive):
    """fedgatectl user passwd / user remove while fedgated runs: within a few seconds
    the new password works, the old one does not, and a removed user cannot log in."""
    (a, ap), = srv.new_users(1)
    jid = f"{a}@{srv.domain}"
    new_pw = ap + "-new"
    p = srv.ctl("user", "passwd", jid, "--password-file", "-", input=new_pw + "\n")
    assert p.returncode == 0, p.stderr
    assert _until(lambda: _can_auth(srv, a, new_pw, "SCRAM-SHA-256")), \
        "the new password does not work 5 s after fedgatectl user passwd"
    for mech in ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"):
        assert _can_auth(srv, a, new_pw, mech), f"new password refused with {mech}"
        assert not _can_auth(srv, a, ap, mech), f"old password still accepted with {mech}"
    p = srv.ctl("user", "remove", jid)
    assert p.returncode == 0, p.stderr
    assert _until(lambda: not _can_auth(srv, a, new_pw, "PLAIN")), \
        "a removed user can still log in 5 s after fedgatectl user remove"


# ---- TLS variants -----------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_login_over_tls12(srv, transport, alive):
    """TLS 1.2 is still accepted (1.2 is the minimum, not the only version)."""
    (user, pw), = srv.new_users(1)
    direct = transport == "direct-tls"
    c = RawClient(srv.host, srv.tls_port if direct else srv.port, srv.domain, srv.ca,
                  direct_tls=direct, tls_max=ssl.TLSVersion.TLSv1_2)
    try:
        assert c.login(user, pw, "SCRAM-SHA-1", presence=False)
        assert c.sock.version() == "TLSv1.2"
    finally:
        c.close()


def test_direct_tls_without_sni(srv, alive):
    """A client that sends no SNI (connecting by address) still gets the certificate of
    the hosted domain and can log in."""
    (user, pw), = srv.new_users(1)
    ctx = xr.tls_context(srv.ca)
    ctx.check_hostname = False  # no SNI: check the name ourselves below
    s = socket.create_connection((srv.host, srv.tls_port), timeout=10)
    t = ctx.wrap_socket(s, server_hostname=None)
    try:
        cert = t.getpeercert()
        names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
        assert srv.domain in names, names
    finally:
        t.close()


def test_direct_tls_with_unknown_sni(srv, alive):
    """SNI naming a domain we do not host: the handshake either fails cleanly or serves a
    certificate; then the stream header for it gets <host-unknown/>. The server stays up."""
    ctx = xr.tls_context(srv.ca)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = socket.create_connection((srv.host, srv.tls_port), timeout=10)
    try:
        t = ctx.wrap_socket(s, server_hostname="unhosted.example")
    except (ssl.SSLError, OSError):
        s.close()
        return
    try:
        t.sendall(xr.stream_header("unhosted.example").encode())
        data = b""
        t.settimeout(10)
        while b"</stream:stream>" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"host-unknown" in data, data
    finally:
        t.close()
