"""`fedgatectl user ...` and `fedgatectl admin ...` (SPEC sections 6 and 7,
doc/cli-decisions.md): passwords from a file or standard input and never shown or stored
in the clear, duplicates, not found, validation, rule A1, API tokens."""
import datetime
import hashlib

import pytest

from fgcli import RFC3339_UTC, assert_audit_record, assert_error_doc

PASSWORD = "Corr3ct-Horse-Battery-Staple-7781"
PASSWORD2 = "Another-Secret-Passphrase-4412"


def store_bytes(fg):
    """The raw bytes of the SQLite store and its journal files."""
    data = b""
    for f in fg.dir.iterdir():
        if f.name.startswith(fg.db.name):
            data += f.read_bytes()
    return data


def all_output(fg):
    """Everything the CLI shows about users, admins and the audit log, human and JSON."""
    text = ""
    for args in (("user", "list"), ("admin", "list"), ("audit",), ("partner", "list"),
                 ("gateway", "show")):
        for j in ((), ("--json",)):
            r = fg.run(*j, *args)
            text += r.out + r.err
    return text


# ---- users ------------------------------------------------------------------------------
def test_user_add_list_passwd_remove(fg):
    pw = fg.pwfile(PASSWORD)
    rc, doc, err = fg.jrun("user", "add", "alice@home.test", "--password-file", pw)
    assert rc == 0, err
    assert doc == {"user": {"jid": "alice@home.test"}}
    rc, doc, err = fg.jrun("user", "add", "bob@home2.test", "--password-file", "-",
                           input=PASSWORD2 + "\n")
    assert rc == 0, err
    assert doc == {"user": {"jid": "bob@home2.test"}}

    rc, doc, _ = fg.jrun("user", "list")
    assert rc == 0
    assert sorted(doc["users"], key=lambda u: u["jid"]) == \
        [{"jid": "alice@home.test"}, {"jid": "bob@home2.test"}]
    r = fg.ok("user", "list")
    assert "alice@home.test" in r.out and "bob@home2.test" in r.out

    pw2 = fg.pwfile(PASSWORD2, "pw2")
    rc, doc, err = fg.jrun("user", "passwd", "alice@home.test", "--password-file", pw2)
    assert rc == 0, err
    assert doc == {"user": {"jid": "alice@home.test"}}
    fg.ok("user", "passwd", "bob@home2.test", "--password-file", "-", input=PASSWORD + "\n")

    rc, doc, err = fg.jrun("user", "remove", "alice@home.test")
    assert rc == 0, err
    assert doc == {"removed": "alice@home.test"}
    rc, doc, _ = fg.jrun("user", "list")
    assert doc == {"users": [{"jid": "bob@home2.test"}]}

    actions = [(a["action"], a["object"]) for a in fg.audit()]
    assert actions == [("user.remove", "user:alice@home.test"),
                       ("user.passwd", "user:bob@home2.test"),
                       ("user.passwd", "user:alice@home.test"),
                       ("user.add", "user:bob@home2.test"),
                       ("user.add", "user:alice@home.test")]
    for a in fg.audit():
        assert_audit_record(a)
        for side in (a["before"], a["after"]):
            assert side is None or set(side) == {"jid"}, side


def test_user_password_never_shown_or_stored_in_clear(fg):
    fg.ok("user", "add", "alice@home.test", "--password-file", fg.pwfile(PASSWORD))
    fg.ok("user", "passwd", "alice@home.test", "--password-file", "-", input=PASSWORD2 + "\n")
    out = all_output(fg)
    assert PASSWORD not in out and PASSWORD2 not in out
    raw = store_bytes(fg)
    assert PASSWORD.encode() not in raw and PASSWORD2.encode() not in raw


def test_user_empty_list(fg):
    rc, doc, _ = fg.jrun("user", "list")
    assert rc == 0 and doc == {"users": []}


@pytest.mark.parametrize("spelling", ["alice@home.test", "ALICE@home.test", "alice@HOME.TEST"])
def test_user_duplicate_exit_5(fg, spelling):
    fg.ok("user", "add", "alice@home.test", "--password-file", fg.pwfile(PASSWORD))
    before = fg.snapshot()
    r = fg.run("user", "add", spelling, "--password-file", fg.pwfile(PASSWORD2))
    assert r.rc == 5, r.err
    rc, doc, _ = fg.jrun("user", "add", spelling, "--password-file", fg.pwfile(PASSWORD2))
    assert rc == 5
    assert_error_doc(doc, "exists", None)
    assert fg.snapshot() == before


@pytest.mark.parametrize("args", [("user", "remove", "ghost@home.test"),
                                  ("user", "passwd", "ghost@home.test", "--password-file", "PW")])
def test_user_missing_exit_4(fg, args):
    fg.ok("user", "add", "alice@home.test", "--password-file", fg.pwfile(PASSWORD))
    args = tuple(str(fg.pwfile(PASSWORD2, "pw2")) if a == "PW" else a for a in args)
    before = fg.snapshot()
    r = fg.run(*args)
    assert r.rc == 4, r.err
    rc, doc, _ = fg.jrun(*args)
    assert rc == 4
    assert_error_doc(doc, "not_found", None)
    assert fg.snapshot() == before


@pytest.mark.parametrize("jid", ["bob@elsewhere.test", "bob@sub.home.test", "bob@home3.test"])
def test_user_non_hosted_domain_exit_2(fg, jid):
    fg.init_store()
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("user", "add", jid, "--password-file", fg.pwfile(PASSWORD))
    assert rc == 2
    assert doc["error"]["code"] in ("invalid_value", "usage")
    assert fg.snapshot() == before


@pytest.mark.parametrize("jid", ["nodomain", "@home.test", "a b@home.test", "a@b@home.test",
                                 "alice@home.test/resource", "a<b@home.test", "",
                                 "x" * 1024 + "@home.test"])
def test_user_bad_jid_exit_2(fg, jid):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run("user", "add", jid, "--password-file", fg.pwfile(PASSWORD))
    assert r.rc == 2, (jid, r.err)
    assert fg.snapshot() == before


def test_user_empty_password_exit_2(fg):
    fg.init_store()
    before = fg.snapshot()
    empty = fg.dir / "empty"
    empty.write_text("\n")
    assert fg.run("user", "add", "a@home.test", "--password-file", empty).rc == 2
    empty.write_text("")
    assert fg.run("user", "add", "a@home.test", "--password-file", empty).rc == 2
    rc, doc, _ = fg.jrun("user", "add", "a@home.test", "--password-file", "-", input="")
    assert rc == 2
    assert doc["error"]["code"] in ("usage", "invalid_value")
    assert fg.run("user", "add", "a@home.test", "--password-file", "-", input="\n").rc == 2
    assert fg.snapshot() == before
    fg.ok("user", "add", "a@home.test", "--password-file", fg.pwfile(PASSWORD))
    before = fg.snapshot()
    assert fg.run("user", "passwd", "a@home.test", "--password-file", "-", input="\n").rc == 2
    assert fg.snapshot() == before


def test_password_never_from_an_argument(fg):
    fg.init_store()
    before = fg.snapshot()
    for args in (("user", "add", "a@home.test", "--password", PASSWORD),
                 ("user", "add", "a@home.test", PASSWORD),
                 ("admin", "add", "boss", "--role", "viewer", "--password", PASSWORD)):
        r = fg.run(*args, input=PASSWORD + "\n")
        assert r.rc == 2, (args, r.rc)
    assert fg.snapshot() == before


def test_password_file_missing_is_an_error(fg):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run("user", "add", "a@home.test", "--password-file", fg.dir / "no-such-file")
    assert r.rc in (1, 2), r.err
    assert "no-such-file" in r.err
    assert fg.snapshot() == before


def test_password_file_first_line_only(fg):
    # only the first line is the password: the second line is not stored anywhere
    f = fg.dir / "pw"
    f.write_text(PASSWORD + "\nSECOND-LINE-NOT-PASSWORD-998877\n")
    fg.ok("user", "add", "a@home.test", "--password-file", f)
    assert b"SECOND-LINE-NOT-PASSWORD-998877" not in store_bytes(fg)


# ---- administrators --------------------------------------------------------------------------
def add_admin(fg, name, role, password=PASSWORD):
    return fg.ok("admin", "add", name, "--role", role, "--password-file",
                 fg.pwfile(password, "apw"))


def test_admin_add_each_role_list_passwd_remove(fg):
    for name, role in (("root1", "server-admin"), ("ops", "administrator"), ("eyes", "viewer")):
        rc, doc, err = fg.jrun("admin", "add", name, "--role", role, "--password-file",
                               fg.pwfile(PASSWORD))
        assert rc == 0, err
        assert doc == {"admin": {"name": name, "role": role}}
    rc, doc, _ = fg.jrun("admin", "list")
    assert rc == 0 and set(doc) == {"admins"}
    assert sorted(doc["admins"], key=lambda a: a["name"]) == [
        {"name": "eyes", "role": "viewer"}, {"name": "ops", "role": "administrator"},
        {"name": "root1", "role": "server-admin"}]
    r = fg.ok("admin", "list")
    for word in ("root1", "server-admin", "ops", "administrator", "eyes", "viewer"):
        assert word in r.out

    rc, doc, err = fg.jrun("admin", "passwd", "ops", "--password-file", "-",
                           input=PASSWORD2 + "\n")
    assert rc == 0, err
    assert doc == {"admin": {"name": "ops", "role": "administrator"}}

    rc, doc, err = fg.jrun("admin", "remove", "eyes")
    assert rc == 0, err
    assert doc == {"removed": "eyes"}
    assert sorted(a["name"] for a in fg.jrun("admin", "list")[1]["admins"]) == ["ops", "root1"]

    audit = fg.audit()
    assert [(a["action"], a["object"]) for a in audit[:2]] == \
        [("admin.remove", "admin:eyes"), ("admin.passwd", "admin:ops")]
    assert audit[0]["before"] == {"name": "eyes", "role": "viewer"}
    adds = [a for a in audit if a["action"] == "admin.add"]
    assert sorted(a["after"]["name"] for a in adds) == ["eyes", "ops", "root1"]
    for a in audit:
        assert_audit_record(a)
        for side in (a["before"], a["after"]):
            assert side is None or set(side) == {"name", "role"}, side


def test_admin_password_never_shown_or_stored_in_clear(fg):
    add_admin(fg, "boss", "server-admin")
    fg.ok("admin", "passwd", "boss", "--password-file", "-", input=PASSWORD2 + "\n")
    out = all_output(fg)
    assert PASSWORD not in out and PASSWORD2 not in out
    raw = store_bytes(fg)
    assert PASSWORD.encode() not in raw and PASSWORD2.encode() not in raw
    assert b"$argon2id$" in raw, "administrator passwords are argon2id hashes"


@pytest.mark.parametrize("role", ["root", "admin", "superuser", "Server-Admin", ""])
def test_admin_bad_role_exit_2(fg, role):
    fg.init_store()
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("admin", "add", "boss", "--role", role, "--password-file",
                         fg.pwfile(PASSWORD))
    assert rc == 2
    assert doc["error"]["code"] in ("invalid_value", "usage")
    assert fg.snapshot() == before


def test_admin_role_is_required(fg):
    fg.init_store()
    before = fg.snapshot()
    assert fg.run("admin", "add", "boss", "--password-file", fg.pwfile(PASSWORD)).rc == 2
    assert fg.snapshot() == before


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "ümlaut", "a@b", "semi;colon"])
def test_admin_bad_name_exit_2(fg, name):
    fg.init_store()
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("admin", "add", name, "--role", "viewer", "--password-file",
                         fg.pwfile(PASSWORD))
    assert rc == 2, doc
    assert doc["error"]["code"] in ("invalid_value", "usage")
    assert fg.snapshot() == before


def test_admin_name_limits_ok(fg):
    for name in ("x" * 64, "a", "Op.s_1-2"):
        add_admin(fg, name, "viewer")
    names = {a["name"] for a in fg.jrun("admin", "list")[1]["admins"]}
    assert names == {"x" * 64, "a", "Op.s_1-2"}


def test_admin_duplicate_exit_5(fg):
    add_admin(fg, "boss", "administrator")
    before = fg.snapshot()
    r = fg.run("admin", "add", "boss", "--role", "viewer", "--password-file",
               fg.pwfile(PASSWORD2))
    assert r.rc == 5, r.err
    rc, doc, _ = fg.jrun("admin", "add", "boss", "--role", "viewer", "--password-file",
                         fg.pwfile(PASSWORD2))
    assert rc == 5
    assert_error_doc(doc, "exists", None)
    assert fg.snapshot() == before


@pytest.mark.parametrize("args", [("admin", "remove", "ghost"),
                                  ("admin", "passwd", "ghost", "--password-file", "-"),
                                  ("admin", "token", "ghost")])
def test_admin_missing_exit_4(fg, args):
    add_admin(fg, "boss", "server-admin")
    before = fg.snapshot()
    r = fg.run(*args, input=PASSWORD + "\n")
    assert r.rc == 4, r.err
    rc, doc, _ = fg.jrun(*args, input=PASSWORD + "\n")
    assert rc == 4
    assert_error_doc(doc, "not_found", None)
    assert fg.snapshot() == before


def test_a1_last_server_admin_cannot_be_removed(fg):
    add_admin(fg, "root1", "server-admin")
    add_admin(fg, "root2", "server-admin")
    add_admin(fg, "ops", "administrator")
    fg.ok("admin", "remove", "root1")  # one of two: fine
    before = fg.snapshot()
    r = fg.run("admin", "remove", "root2")
    assert r.rc == 3, r.err
    assert any(l.startswith("error: A1: ") for l in r.err.splitlines()), r.err
    rc, doc, _ = fg.jrun("admin", "remove", "root2")
    assert rc == 3
    assert_error_doc(doc, "refused", "A1")
    assert fg.snapshot() == before
    assert {a["name"] for a in fg.jrun("admin", "list")[1]["admins"]} == {"root2", "ops"}
    fg.ok("admin", "remove", "ops")  # removing others is still fine
    # once there is a second server-admin again, the first may go
    add_admin(fg, "root3", "server-admin")
    fg.ok("admin", "remove", "root2")


def test_a1_does_not_block_other_roles_without_server_admin(fg):
    add_admin(fg, "ops", "administrator")
    add_admin(fg, "eyes", "viewer")
    fg.ok("admin", "remove", "ops")
    fg.ok("admin", "remove", "eyes")
    assert fg.jrun("admin", "list")[1] == {"admins": []}


# ---- API tokens -----------------------------------------------------------------------------
def token(fg, *args):
    rc, doc, err = fg.jrun("admin", "token", *args)
    assert rc == 0, err
    assert set(doc) == {"token"}
    t = doc["token"]
    assert set(t) == {"id", "admin", "role", "expires", "secret"}, t
    assert isinstance(t["secret"], str) and len(t["secret"]) >= 20, t
    assert t["id"] and t["secret"] != str(t["id"])
    return t


def test_token_json_and_defaults(fg):
    add_admin(fg, "boss", "administrator")
    t = token(fg, "boss")
    assert t["admin"] == "boss" and t["role"] == "administrator" and t["expires"] is None
    t2 = token(fg, "boss", "--role", "viewer")
    assert t2["role"] == "viewer"
    assert t2["secret"] != t["secret"] and t2["id"] != t["id"]


def test_token_human_output_prints_secret(fg):
    add_admin(fg, "boss", "server-admin")
    r = fg.ok("admin", "token", "boss")
    rec = [a for a in fg.audit() if a["action"] == "token.create"]
    assert len(rec) == 1
    tid = str(rec[0]["after"]["id"])
    # the secret: a long word of the output that is not the token id
    words = [w.strip(".,:;'\"") for w in r.out.split()]
    secrets = [w for w in words if len(w) >= 20 and w not in (tid, f"token:{tid}")]
    assert secrets, f"no secret printed: {r.out!r}"
    # and it is not shown again or stored in the clear
    out = all_output(fg)
    raw = store_bytes(fg)
    for w in secrets:
        assert w not in out, "token secret shown again"
        assert w.encode() not in raw, "token secret stored in the clear"


def test_token_expires(fg):
    add_admin(fg, "boss", "server-admin")
    now = datetime.datetime.now(datetime.timezone.utc)
    t = token(fg, "boss", "--expires", "30")
    assert RFC3339_UTC.match(t["expires"]), t["expires"]
    exp = datetime.datetime.fromisoformat(t["expires"].replace("Z", "+00:00"))
    assert abs((exp - now) - datetime.timedelta(days=30)) < datetime.timedelta(minutes=5)
    assert token(fg, "boss", "--expires", "1")["expires"]
    assert token(fg, "boss", "--expires", "3650")["expires"]
    before = fg.snapshot()
    for bad in ("0", "3651", "-1", "abc", ""):
        rc, doc, _ = fg.jrun("admin", "token", "boss", "--expires", bad)
        assert rc == 2, (bad, doc)
        assert doc["error"]["code"] in ("invalid_value", "usage")
    assert fg.snapshot() == before


@pytest.mark.parametrize("admin_role,asked,ok", [
    ("viewer", "viewer", True),
    ("viewer", "administrator", False),
    ("viewer", "server-admin", False),
    ("administrator", "viewer", True),
    ("administrator", "server-admin", False),
    ("server-admin", "server-admin", True),
    ("server-admin", "viewer", True),
])
def test_token_role_at_most_the_admins(fg, admin_role, asked, ok):
    add_admin(fg, "who", admin_role)
    if ok:
        assert token(fg, "who", "--role", asked)["role"] == asked
    else:
        before = fg.snapshot()
        rc, doc, _ = fg.jrun("admin", "token", "who", "--role", asked)
        assert rc == 2, doc
        assert fg.snapshot() == before


def test_token_bad_role_exit_2(fg):
    add_admin(fg, "boss", "server-admin")
    assert fg.run("admin", "token", "boss", "--role", "god").rc == 2


def test_token_secret_not_in_audit(fg):
    add_admin(fg, "boss", "server-admin")
    t = token(fg, "boss", "--expires", "7")
    rc, doc, _ = fg.jrun("audit")
    text = fg.run("--json", "audit").out + fg.run("audit").out
    assert t["secret"] not in text
    assert t["secret"].encode() not in store_bytes(fg)
    rec = [a for a in doc["audit"] if a["action"] == "token.create"]
    assert len(rec) == 1
    assert_audit_record(rec[0])
    assert rec[0]["object"] == f"token:{t['id']}"
    assert rec[0]["before"] is None
    assert rec[0]["after"] == {"id": t["id"], "admin": "boss", "role": "server-admin",
                               "expires": t["expires"]}
    # only a SHA-256 of the secret is kept
    assert hashlib.sha256(t["secret"].encode()).hexdigest() not in text
