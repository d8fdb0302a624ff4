"""State transitions run in parallel through the real service (issue 19 item 2): each check and its write are one
transaction, so 12 requests at once close a search once, store one disposition per rank, and record no
corroboration on a closed search. Every loser gets a clear refusal (403), never a 500."""

from __future__ import annotations

import shutil
import threading

import httpx
import pytest

from leadmatch.governance import accounts, casework
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.search.run import run

from .helpers import ADMIN, AGENT, PASSWORD, REVIEWER, free_port, search_request, start_server

PARALLEL = 12


@pytest.fixture(scope="module")
def served(enrolled_template, tmp_path_factory):
    """The enrolled workspace with three searches of the agent's, served by `leadmatch serve` on loopback:
    `fresh` (no dispositions), `reviewable` (every candidate a possible lead, rank 1 corroborated) and `open`
    (every candidate a possible lead, nothing corroborated yet)."""
    home = tmp_path_factory.mktemp("races") / "home"
    shutil.copytree(enrolled_template, home)
    ws = open_workspace(home)
    ids = {}
    for name in ("fresh", "reviewable", "open"):
        ids[name] = run(ws, AGENT, search_request("obama-720p.jpg", top_k=3, case=f"RACE-{name}"))["search_id"]
    for name in ("reviewable", "open"):
        for rank in (1, 2, 3):
            casework.disposition(ws, AGENT, ids[name], rank, "possible-lead", "Same jaw line and ears.")
    accounts.add_user(ws, ADMIN, "admin2", ["admin"], PASSWORD)
    casework.corroborate(ws, REVIEWER, ids["reviewable"], 1, "fingerprints", "Ten-print match on file.", "FP-1",
                         "corroborated")
    ws.close()
    process, url = start_server(home, free_port())
    yield {"home": home, "url": url, "ids": ids}
    process.terminate()
    process.wait(10)


def token(url: str, name: str) -> dict:
    answer = httpx.post(url + "/api/v1/login", json={"name": name, "password": PASSWORD}, timeout=60)
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["token"]}


def at_once(url: str, requests: list[tuple[dict, str, dict]]) -> list[httpx.Response]:
    """POST every (headers, path, body) from its own thread, released together; the answers in order."""
    answers: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def send(i: int, headers: dict, path: str, body: dict) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            start.wait()
            answers[i] = client.post(path, headers=headers, json=body)

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def entries(home, search_id: str, action: str) -> list[dict]:
    ws = open_workspace(home)
    try:
        return [e for e in audit.entries(ws.conn, search_id=search_id) if e["action"] == action]
    finally:
        ws.close()


def refusal_reasons(answers: list[httpx.Response]) -> set[str]:
    return {a.json()["error"]["reason"] for a in answers if a.status_code != 200}


def test_parallel_closures_close_a_search_once(served):
    search_id, reviewer = served["ids"]["reviewable"], token(served["url"], REVIEWER.name)
    path = f"/api/v1/searches/{search_id}/close"
    bodies = [{"outcome": "identified", "rank": 1, "note": "Fingerprints confirm the lead."},
              {"outcome": "no-identification", "note": "Nothing corroborated in time."}]
    answers = at_once(served["url"], [(reviewer, path, bodies[i % 2]) for i in range(PARALLEL)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [403] * (PARALLEL - 1), [a.text for a in answers]
    assert refusal_reasons(answers) == {"closed"}
    winner = next(a.json() for a in answers if a.status_code == 200)
    closures = entries(served["home"], search_id, "close")
    assert [e["outcome"] for e in closures].count("ok") == 1
    assert [e["outcome"] for e in closures].count("refused") == PARALLEL - 1
    ws = open_workspace(served["home"])
    row = ws.conn.execute("SELECT status, closed_at FROM searches WHERE id = ?", (search_id,)).fetchone()
    ws.close()
    assert (row["status"], row["closed_at"]) == (winner["status"], winner["closed_at"])  # the first closure stands


def test_parallel_dispositions_of_one_rank_store_one(served):
    search_id, agent = served["ids"]["fresh"], token(served["url"], AGENT.name)
    path = f"/api/v1/searches/{search_id}/dispositions"
    decisions = ("possible-lead", "excluded")
    answers = at_once(served["url"], [(agent, path, {"rank": 1, "decision": decisions[i % 2],
                                                      "note": f"Compared ears and jaw, take {i}."})
                                      for i in range(PARALLEL)])
    assert sorted(a.status_code for a in answers) == [200] + [403] * (PARALLEL - 1), [a.text for a in answers]
    assert refusal_reasons(answers) == {"already-dispositioned"}
    ws = open_workspace(served["home"])
    stored = ws.conn.execute("SELECT decision FROM dispositions WHERE search_id = ? AND rank = 1",
                             (search_id,)).fetchall()
    ws.close()
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert [r[0] for r in stored] == [winner["decision"]]
    assert [e["outcome"] for e in entries(served["home"], search_id, "disposition")].count("ok") == 1


def test_parallel_corroborations_and_a_closure_record_nothing_on_a_closed_search(served):
    search_id, reviewer = served["ids"]["open"], token(served["url"], REVIEWER.name)
    corroboration = {"rank": 2, "evidence_type": "records-check", "evidence": "Booking record shows the scar.",
                     "reference": "RC-7", "outcome": "corroborated"}
    closure = {"outcome": "no-identification", "note": "Closing while evidence still comes in."}
    requests = [(reviewer, f"/api/v1/searches/{search_id}/corroborations", corroboration) if i % 3 else
                (reviewer, f"/api/v1/searches/{search_id}/close", closure) for i in range(PARALLEL)]
    answers = at_once(served["url"], requests)
    assert all(a.status_code in (200, 403) for a in answers), [a.text for a in answers]
    closes = [a for (_, path, _), a in zip(requests, answers) if path.endswith("/close")]
    assert [a.status_code for a in closes].count(200) == 1
    assert refusal_reasons(answers) <= {"closed"}
    accepted = sum(a.status_code == 200 for (_, path, _), a in zip(requests, answers) if "corroborations" in path)
    ws = open_workspace(served["home"])
    closed_at = ws.conn.execute("SELECT closed_at FROM searches WHERE id = ?", (search_id,)).fetchone()[0]
    recorded = [r[0] for r in ws.conn.execute("SELECT recorded_at FROM corroborations WHERE search_id = ?",
                                              (search_id,))]
    ws.close()
    assert len(recorded) == accepted and all(at < closed_at for at in recorded)
    ok = [e for e in entries(served["home"], search_id, "corroborate") if e["outcome"] == "ok"]
    assert len(ok) == accepted
    assert [e["outcome"] for e in entries(served["home"], search_id, "close")].count("ok") == 1


def test_two_admins_disabling_each_other_at_once_leave_one_enabled(served):
    first, second = token(served["url"], ADMIN.name), token(served["url"], "admin2")
    requests = [(first, "/api/v1/users/admin2/disable", {}) if i % 2 else (second, f"/api/v1/users/{ADMIN.name}/disable", {})
                for i in range(PARALLEL)]
    answers = at_once(served["url"], requests)
    assert [a.status_code for a in answers].count(200) == 1, [a.text for a in answers]
    assert all(a.status_code in (200, 401, 403) for a in answers), [a.text for a in answers]
    ws = open_workspace(served["home"])
    enabled = {r[0] for r in ws.conn.execute("SELECT name FROM users WHERE disabled_at IS NULL AND name IN (?, ?)",
                                             (ADMIN.name, "admin2"))}
    ws.close()
    assert len(enabled) == 1
