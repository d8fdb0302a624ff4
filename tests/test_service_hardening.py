"""The service under load and odd requests (security round 3, issue 19 items 5, 7, 8, 9): clips within a budget
and in a pool of their own, stopped when their client leaves; a dead worker does not fail another request; clear
errors instead of 500s; no leftovers or leaks."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import threading
import time
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.cli.backends import _multipart
from leadmatch.governance import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .conftest import AGENT, AGENT2, ANALYST, AUDITOR, FACES, GALLERY, GALLERY_DIR, MEANS, PASSWORD, PROBES_DIR, \
    REVIEWER
from .test_service import free_port, start_server

CLIP = FACES / "video" / "short_hamilton_clip.mp4"  # 9.2 s, 640×360
FIELDS = {"gallery": GALLERY, "case": "H-1", "purpose": "robbery", "top_k": "3",
          "justification": "Armed robbery suspect caught on the store camera.", "traditional_means": MEANS}


def bearer(api, actor) -> dict:
    answer = api.post("/api/v1/login", json={"name": actor.name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["token"]}


def token(url: str, actor) -> str:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.request("POST", "/api/v1/login", json.dumps({"name": actor.name, "password": PASSWORD}),
                       {"Content-Type": "application/json"})
    answer = connection.getresponse()
    assert answer.status == 200
    return json.loads(answer.read())["token"]


def send_search(url: str, bearer_token: str, name: str, data: bytes, **fields) -> http.client.HTTPConnection:
    """Send a search upload and leave its connection open (the answer is read, or the client leaves, later)."""
    body, kind = _multipart({**FIELDS, **fields}, [("probe", name, data)])
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=300)
    connection.request("POST", "/api/v1/searches", body, {"Content-Type": kind,
                                                          "Authorization": "Bearer " + bearer_token})
    return connection


def answered(connection: http.client.HTTPConnection) -> bool:
    """Whether the service has begun to answer on `connection` (without waiting)."""
    return bool(select.select([connection.sock], [], [], 0)[0])


def audit_rows(home: Path, **filters) -> list[dict]:
    ws = open_workspace(home)
    try:
        return audit.entries(ws.conn, **filters)
    finally:
        ws.close()


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {seconds} s")


# Item 5: clips cannot starve photo searches -----------------------------------------------------------------

def test_a_clip_over_the_frame_budget_is_refused_before_decoding_with_one_line(home):
    with TestClient(create_app(home, workers=1, clip_workers=1, max_clip_frames=100)) as api:
        answer = api.post("/api/v1/searches", headers=bearer(api, AGENT), data={**FIELDS, "every": "0.04"},
                          files={"probe": ("clip.mp4", CLIP.read_bytes(), "video/mp4")})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "makes 230 frames, over the limit of 100 frames a search" in error["message"]
    assert "\n" not in error["message"] and "--every 0.1" in error["hint"]
    last = audit_rows(home, limit=1)[0]
    assert (last["action"], last["outcome"]) == ("search", "refused") and last["reason"].startswith("too-large")


def test_photo_searches_are_answered_while_clips_run_and_a_clip_whose_client_left_stops(home):
    server, url = start_server(home, free_port())
    try:
        clips = [send_search(url, token(url, agent), "clip.mp4", CLIP.read_bytes(), every="0.04", track="largest",
                             case=f"H-CLIP-{n}") for n, agent in enumerate((AGENT, AGENT2))]
        time.sleep(3)  # both clips are uploaded and being analysed (one waits for the clip worker)
        photo = send_search(url, token(url, AGENT), "obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes())
        reply = photo.getresponse()
        assert reply.status == 200, reply.read()
        assert json.loads(reply.read())["candidates"][0]["subject"] == "barack_obama"
        assert not any(answered(c) for c in clips), "the photo search waited for a clip to finish"
        for connection in clips:  # the agents give up: the service must stop their work
            connection.sock.shutdown(2)
            connection.close()

        def cancelled():
            rows = [e for e in audit_rows(home, actor=None) if e["case_number"] in ("H-CLIP-0", "H-CLIP-1")]
            return len(rows) == 2 and all(e["reason"].startswith("cancelled") for e in rows) and rows

        rows = wait_for(cancelled, 60, "both abandoned clip searches being marked cancelled")
        assert {e["outcome"] for e in rows} == {"refused"}
        again = send_search(url, token(url, AGENT), "clip.mp4", CLIP.read_bytes(), every="1.0", track="largest")
        assert again.getresponse().status == 200  # the clip worker is free again
    finally:
        server.terminate()
        server.wait(10)


# Item 8: a dead worker does not fail an unrelated request --------------------------------------------------

def test_a_request_on_a_worker_that_dies_is_retried_on_a_fresh_one(home):
    app = create_app(home, workers=1)
    with TestClient(app) as api:
        agent = bearer(api, AGENT)
        outcome = {}

        def search():
            outcome["answer"] = api.post("/api/v1/searches", headers=agent, data=FIELDS, files={
                "probe": ("obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")})

        thread = threading.Thread(target=search)
        thread.start()
        workers = wait_for(lambda: app.state.pool._executor and list(app.state.pool._executor._processes), 30,
                           "the search's worker starting")
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer or another request's bomb would
        thread.join(300)
        answer = outcome["answer"]
        assert answer.status_code == 200, answer.text
        assert answer.json()["candidates"][0]["subject"] == "barack_obama"
        later = api.post("/api/v1/searches", headers=agent, data=FIELDS, files={
            "probe": ("obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")})
        assert later.status_code == 200  # the pool started afresh
