"""Sign-in throttling that cannot lock everyone out (issue 19 item 3): per account at an address and per
address, kept in the record across restarts, keyed on the real peer unless a configured proxy forwards."""

from __future__ import annotations

import secrets
import threading
import warnings

import httpx
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.governance import signin
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .helpers import ADMIN, AGENT, PASSWORD, REVIEWER, free_port, start_server


def still(_=None) -> float:
    """A clock that stands still: a wait, once begun, never runs out during a test on a slow machine."""
    return 1_800_000_000.0


def app_at_still_time(home):
    return create_app(home, workers=1, throttle=signin.SignInThrottle(clock=still))


def attempt(client, name: str, password: str = PASSWORD, **headers) -> int:
    return client.post("/api/v1/login", json={"name": name, "password": password}, headers=headers).status_code


def logins(home) -> list[dict]:
    ws = open_workspace(home)
    try:
        return [e for e in audit.entries(ws.conn) if e["action"] == "login"]
    finally:
        ws.close()


def test_random_name_failures_from_one_address_never_lock_out_the_admin(home):
    app = app_at_still_time(home)
    with TestClient(app, client=("10.0.0.1", 5000)) as sprayer, TestClient(app, client=("10.0.0.9", 5000)) as desk:
        assert attempt(sprayer, REVIEWER.name) == 200  # a regular user of the sprayer's (shared) address
        for _ in range(signin.ADDRESS_FREE):
            assert attempt(sprayer, "x" + secrets.token_hex(4), "wrong guess") == 401
        assert attempt(sprayer, "x" + secrets.token_hex(4), "wrong guess") == 429  # the spray is slowed …
        assert attempt(sprayer, AGENT.name) == 429  # … for names new to that address
        assert attempt(desk, ADMIN.name) == 200  # never anyone at another address
        assert attempt(sprayer, REVIEWER.name) == 200  # nor those who sign in from that address
    assert sum(e["reason"].startswith("throttled") for e in logins(home) if e["reason"]) == 2


def test_failures_on_the_admins_name_block_that_address_only(home):
    app = app_at_still_time(home)
    with TestClient(app, client=("10.0.0.1", 5000)) as guesser, TestClient(app, client=("10.0.0.2", 5000)) as admin:
        for _ in range(signin.PAIR_FREE):
            assert attempt(guesser, ADMIN.name, "wrong guess") == 401
        assert attempt(guesser, ADMIN.name) == 429
        assert attempt(admin, ADMIN.name) == 200
        assert attempt(guesser, ADMIN.name) == 429  # a success elsewhere does not clear the guesser's count


def test_the_throttle_survives_a_restart(home):
    with TestClient(app_at_still_time(home), client=("10.0.0.1", 5000)) as before:
        for _ in range(signin.PAIR_FREE):
            assert attempt(before, AGENT.name, "wrong guess") == 401
    with TestClient(app_at_still_time(home), client=("10.0.0.1", 5000)) as after:  # a new service process
        answer = after.post("/api/v1/login", json={"name": AGENT.name, "password": PASSWORD})
    assert answer.status_code == 429, answer.text  # a fresh start would have let it in
    assert answer.json()["error"]["hint"].startswith("wait ")


def test_forwarded_addresses_are_read_only_from_configured_proxies():
    proxies = signin.trusted_networks(["10.1.0.0/16", "127.0.0.1"])
    assert signin.client_address("127.0.0.1", "203.0.113.5", ()) == "127.0.0.1"  # nobody trusted: the peer
    assert signin.client_address("192.0.2.7", "203.0.113.5", proxies) == "192.0.2.7"  # not a proxy: the peer
    assert signin.client_address("127.0.0.1", "6.6.6.6, 203.0.113.5, 10.1.2.3", proxies) == "203.0.113.5"
    assert signin.client_address("127.0.0.1", "203.0.113.5, not-an-ip", proxies) == "127.0.0.1"
    with pytest.raises(signin.InputError, match="not an IP address"):
        signin.trusted_networks(["proxy.example"])


def test_a_spoofed_forwarded_for_from_loopback_is_ignored_by_the_real_service(home):
    """Through `leadmatch serve` (uvicorn, which on its own believes X-Forwarded-For from loopback)."""
    process, url = start_server(home, free_port())
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            # each guess claims another address; were any believed, no count would ever reach the limit (the
            # real clock runs: on a slow machine a 2 s wait may pass, and the next guess counts once more)
            codes = [attempt(client, AGENT.name, "wrong guess", **{"X-Forwarded-For": f"198.51.100.{n}"})
                     for n in range(signin.PAIR_FREE + 4)]
            assert codes[:signin.PAIR_FREE] == [401] * signin.PAIR_FREE and 429 in codes, codes
            # parallel guesses on another account cannot slip past the count: each is counted before its check
            answers, start = [], threading.Barrier(12)

            def guess() -> None:
                with httpx.Client(base_url=url, timeout=120) as own:
                    start.wait()
                    answers.append(attempt(own, REVIEWER.name, "wrong guess"))

            threads = [threading.Thread(target=guess) for _ in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(answers) == [401] * signin.PAIR_FREE + [429] * (12 - signin.PAIR_FREE)
    finally:
        process.terminate()
        process.wait(10)
    entries = [e for e in logins(home) if e["actor"] == AGENT.name]
    assert entries and {e["objects"]["address"] for e in entries} == {"127.0.0.1"}  # the real peer, as audited


def test_a_configured_proxy_is_believed_and_the_peer_audited(home):
    process, url = start_server(home, free_port(), "--trusted-proxy", "127.0.0.1")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            codes = [attempt(client, AGENT.name, "wrong guess", **{"X-Forwarded-For": "203.0.113.7"})
                     for _ in range(signin.PAIR_FREE + 4)]
            assert codes[:signin.PAIR_FREE] == [401] * signin.PAIR_FREE and 429 in codes, codes
            assert attempt(client, AGENT.name, **{"X-Forwarded-For": "203.0.113.8"}) == 200  # another client
    finally:
        process.terminate()
        process.wait(10)
    refused = [e for e in logins(home) if e["actor"] == AGENT.name and e["outcome"] == "refused"]
    assert {(e["objects"]["address"], e["objects"]["peer"]) for e in refused} == {("203.0.113.7", "127.0.0.1")}
