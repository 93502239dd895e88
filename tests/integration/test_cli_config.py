"""fedgatectl: finding and checking the configuration file, and exit status 1 for
configuration errors and an unreachable or unwritable store (SPEC section 7)."""
import pytest

from fgcli import BAD_CONFIGS, assert_error_doc, assert_names_file_line_key


@pytest.mark.parametrize("name,text,line,key", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_config_errors_exit_1_naming_file_line_key(fg, name, text, line, key):
    fg.conf.write_text(text(fg))
    first = line[0] if isinstance(line, tuple) else line
    assert fg.conf.read_text().splitlines()[first - 1].strip(), "test table: wrong line number"
    r = fg.run("partner", "list")
    assert r.rc == 1, f"{name}: exit {r.rc} {r.err!r}"
    assert_names_file_line_key(r.err, fg.conf, line, key)
    # with --json: one JSON document with the error, still exit 1
    r = fg.run("--json", "partner", "list")
    assert r.rc == 1
    doc = r.json
    assert set(doc) == {"error"} and doc["error"]["code"] in ("io", "invalid_value", "usage")
    assert str(fg.conf) in doc["error"]["message"]
    # nothing was created from a bad configuration
    assert not fg.db.exists()


def test_missing_config_file_exit_1(fg):
    missing = fg.dir / "nope.conf"
    r = fg.run("--config", missing, "partner", "list", conf=False)
    assert r.rc == 1
    assert str(missing) in r.err


def test_config_from_environment(fg):
    other = fg.dir / "other.conf"
    other.write_text(fg.conf.read_text())
    fg.conf.unlink()
    r = fg.run("partner", "new", "env.test", conf=False, env={"FEDGATE_CONFIG": str(other)})
    assert r.rc == 0, r.err
    r = fg.run("--json", "partner", "show", "env.test", conf=False,
               env={"FEDGATE_CONFIG": str(other)})
    assert r.rc == 0 and r.json["partner"]["domain"] == "env.test"


def test_config_from_current_directory(fg):
    # ./fedgate.conf is used when neither --config nor $FEDGATE_CONFIG is given
    r = fg.run("partner", "new", "cwd.test", conf=False, cwd=fg.dir)
    assert r.rc == 0, r.err
    assert fg.partner("cwd.test") is not None


def test_explicit_config_wins_over_environment(fg):
    bad = fg.dir / "bad.conf"
    bad.write_text("[server]\nfrobnicate = 1\n")
    r = fg.run("partner", "list", env={"FEDGATE_CONFIG": str(bad)})
    assert r.rc == 0, r.err


# ---- store failures: exit 1 ---------------------------------------------------------------------
@pytest.mark.parametrize("args", [("partner", "list"), ("partner", "new", "x.test"),
                                  ("gateway", "show"), ("audit",)])
def test_unwritable_store_exit_1(fg, args):
    fg.write_conf(store="sqlite:/nonexistent-dir/x.db")
    r = fg.run(*args)
    assert r.rc == 1, r.err
    assert "/nonexistent-dir/x.db" in r.err, f"message does not name the store: {r.err!r}"
    assert r.err.count("\n") <= 5 and "Traceback" not in r.err
    r = fg.run("--json", *args)
    assert r.rc == 1
    e = assert_error_doc(r.json, "io", None)
    assert "/nonexistent-dir/x.db" in e["message"]


def test_store_is_a_directory_exit_1(fg):
    d = fg.dir / "adir"
    d.mkdir()
    fg.write_conf(store=f"sqlite:{d}")
    r = fg.run("partner", "list")
    assert r.rc == 1, r.err
    assert str(d) in r.err


def test_unreachable_postgresql_exit_1(fg):
    fg.write_conf(store="postgresql://fedgate@127.0.0.1:1/fedgate")
    r = fg.run("partner", "list", timeout=20)
    assert r.rc == 1, r.err
    assert r.err.strip()
    r = fg.run("--json", "partner", "new", "x.test", timeout=20)
    assert r.rc == 1
    assert_error_doc(r.json, "io", None)


def test_store_is_created_and_reused(fg):
    assert not fg.db.exists()
    fg.ok("partner", "new", "keep.test")
    assert fg.db.exists()
    assert fg.partner("keep.test") is not None
