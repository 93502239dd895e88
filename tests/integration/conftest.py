"""Fixtures for the command-line integration tests: they run the real `fedgatectl` and
`fedgated` binaries (found in $FG_BUILD_DIR, default /work/main/build) against a fresh
SQLite store in a private temporary directory per test, with every listener off. The
helpers and expectations live in fgcli.py."""
import pytest

from fgcli import CTL, DAEMON, Daemon, Gate, require


@pytest.fixture
def fg(tmp_path):
    require(CTL)
    return Gate(tmp_path)


@pytest.fixture
def daemon_bin():
    require(DAEMON)
    return DAEMON


@pytest.fixture
def daemon_factory(fg, daemon_bin):
    started = []

    def start(*args):
        d = Daemon(fg, fg.dir / f"daemon{len(started)}.log", args)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()
