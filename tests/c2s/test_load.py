"""500 concurrent logged-in clients exchanging messages, none lost (issue 4).

Raw asyncio clients (xmppraw.AsyncClient), not slixmpp, for speed: plain TCP (allowed by
[c2s] require_tls = false) or STARTTLS, SCRAM-SHA-1, bind, initial presence. Clients are paired
(0-1, 2-3, ...); once all are online each sends MSGS messages to its partner's full JID
and every client must receive exactly its partner's MSGS messages, in order."""
import asyncio
import os
import resource
import time

import pytest

import xmppraw as xr

ADDR = "127.0.0.64"
N = int(os.environ.get("FG_C2S_LOAD_CLIENTS", "500"))
MSGS = 5
SETTINGS = {"c2s.require_tls": False}
USER_POOL = 2 * N
LOGIN_CONCURRENCY = 50
LOGIN_BUDGET = 45  # seconds for all logins
DELIVERY_BUDGET = 20  # seconds for all messages


@pytest.mark.parametrize("transport", ["plain-tcp", "starttls"])
def test_500_clients_exchange_messages(srv, transport, alive):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N + 100:
        pytest.fail(f"open-file limit {soft} too low for {N} clients")
    users = srv.new_users(N)

    async def body():
        ctx = xr.tls_context(srv.ca) if transport == "starttls" else None
        clients = [xr.AsyncClient(srv.host, srv.port, srv.domain, ctx) for _ in range(N)]
        sem = asyncio.Semaphore(LOGIN_CONCURRENCY)
        cache = {}

        async def one(i):
            async with sem:
                u, p = users[i]
                await clients[i].login(u, p, f"load{i}", cache)

        t0 = time.monotonic()
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(N)), return_exceptions=True),
                LOGIN_BUDGET)
            failed = [(i, repr(r)) for i, r in enumerate(results) if isinstance(r, BaseException)]
            assert not failed, f"{len(failed)} of {N} logins failed, e.g. {failed[:5]}"
            t_login = time.monotonic() - t0
            for c in clients:
                c.expect = MSGS
                c.start_reading()
            # every client is online: send
            t1 = time.monotonic()
            for k in range(MSGS):
                for i, c in enumerate(clients):
                    partner = clients[i ^ 1]
                    c._send(xr.message(partner.jid, f"{i}:{k}", mid=f"m{i}-{k}"))
            await asyncio.gather(*(c.writer.drain() for c in clients))
            try:
                await asyncio.wait_for(asyncio.gather(*(c.got.wait() for c in clients)),
                                       DELIVERY_BUDGET)
            except asyncio.TimeoutError:
                pass
            t_deliver = time.monotonic() - t1
            await asyncio.sleep(0.5)  # duplicates, if any, would show up now
            errors = [(c.jid, c.error) for c in clients if c.error]
            assert not errors, f"{len(errors)} clients saw errors, e.g. {errors[:5]}"
            lost, wrong = [], []
            for i, c in enumerate(clients):
                want = [f"{i ^ 1}:{k}" for k in range(MSGS)]
                if c.bodies != want:
                    (lost if len(c.bodies) < MSGS else wrong).append((c.jid, c.bodies))
            total = sum(len(c.bodies) for c in clients)
            assert not lost and not wrong, (
                f"{total} of {N * MSGS} delivered; {len(lost)} clients missing messages "
                f"(e.g. {lost[:3]}), {len(wrong)} with extra/out-of-order ones "
                f"(e.g. {wrong[:3]})")
            print(f"{N} clients ({transport}) logged in in {t_login:.1f}s; {N * MSGS} messages delivered "
                  f"in {t_deliver:.2f}s")
        finally:
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in clients),
                                                  return_exceptions=True), 20)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), LOGIN_BUDGET + DELIVERY_BUDGET + 30))
    finally:
        loop.close()
