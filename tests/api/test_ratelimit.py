"""Login rate limiting per address and per account: 5 failures within the window answer 429
(code rate_limited) until the window has passed. The window is shortened to 3 s here with
FG_ADMIN_LOGIN_WINDOW. Client source addresses are other loopback addresses."""
import time

import pytest

from conftest import make_gate

IP = "127.0.0.42"
WINDOW = 3


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    g = make_gate(tmp_path_factory, IP, env={"FG_ADMIN_LOGIN_WINDOW": str(WINDOW)})
    yield g
    g.stop()


def src(n):
    return f"127.0.1.{n}"


def test_per_address(gate):
    c = gate.client(source=src(1))
    for i in range(5):  # different accounts: only the address adds up
        r = c.login(f"nobody{i}", "bad")
        assert r.status == 401, (i, r)
    r = c.login("boss")  # right password, but this address is blocked
    assert r.status == 429
    r.error("rate_limited")
    assert r.header("Retry-After") == str(WINDOW)
    assert gate.client(source=src(2)).login("boss").status == 200  # another address is not
    time.sleep(WINDOW + 0.5)
    assert c.login("boss").status == 200


def test_per_account(gate):
    for i in range(5):  # one account from five addresses
        assert gate.client(source=src(10 + i)).login("adm", "bad").status == 401
    fresh = gate.client(source=src(20))
    r = fresh.login("adm")
    assert r.status == 429
    r.error("rate_limited")
    assert fresh.login("vic").status == 200  # other accounts are not blocked
    time.sleep(WINDOW + 0.5)
    assert fresh.login("adm").status == 200


def test_success_clears_the_account(gate):
    for i in range(4):
        assert gate.client(source=src(30 + i)).login("vic", "bad").status == 401
    assert gate.client(source=src(40)).login("vic").status == 200
    for i in range(4):
        assert gate.client(source=src(50 + i)).login("vic", "bad").status == 401
    assert gate.client(source=src(60)).login("vic").status == 200


def test_failures_are_logged_and_counted(gate):
    log = gate.log()
    assert "event=admin-login-refused" in log and "address=127.0.1.1" in log
    assert "Boss-pw" not in log and "Adm-pw" not in log
    m = gate.client("boss").get("/metrics", prefix="")
    line = [l for l in m.text.splitlines() if l.startswith("fedgate_auth_failures_total ")]
    assert line and int(line[0].split()[1]) >= 18
