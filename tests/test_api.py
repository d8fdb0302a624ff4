"""The JSON API /api/v1 over the real library (real workspace, real photos): bearer tokens, need-to-know,
roles, throttling, size limits, and a decompression bomb that must not stall other users."""

from __future__ import annotations

import io
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.governance import signin
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .helpers import (
    ADMIN,
    AGENT,
    AGENT2,
    ANALYST,
    AUDITOR,
    GALLERY,
    LABEL,
    MEANS,
    PASSWORD,
    PROBES_DIR,
    REVIEWER,
    search_request,
)

SEARCH_FIELDS = {"gallery": GALLERY, "case": "API-1", "purpose": "robbery", "top_k": "3",
                 "justification": "Armed robbery suspect caught on the store camera.", "traditional_means": MEANS}


@pytest.fixture
def api(home):
    with TestClient(create_app(home, workers=1)) as client:
        yield client


def bearer(api, actor) -> dict:
    answer = api.post("/api/v1/login", json={"name": actor.name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["token"]}


def routes(search_id: str) -> list[tuple[str, str, dict]]:
    """Every route that needs a signed-in caller, with a plausible request body."""
    return [
        ("POST", "/api/v1/logout", {}),
        ("GET", "/api/v1/whoami", {}),
        ("GET", "/api/v1/purposes", {}),
        ("POST", "/api/v1/searches", {"data": SEARCH_FIELDS,
                                      "files": {"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes())}}),
        ("GET", "/api/v1/searches", {}),
        ("GET", f"/api/v1/searches/{search_id}", {}),
        ("POST", f"/api/v1/searches/{search_id}/dispositions",
         {"json": {"rank": 1, "decision": "excluded", "note": "Different ear shape."}}),
        ("POST", f"/api/v1/searches/{search_id}/corroborations",
         {"json": {"rank": 1, "evidence_type": "documents", "evidence": "Passport photo matches.",
                   "reference": "R-1", "outcome": "corroborated"}}),
        ("POST", f"/api/v1/searches/{search_id}/close",
         {"json": {"outcome": "no-identification", "note": "Nothing corroborated."}}),
        ("GET", f"/api/v1/searches/{search_id}/report", {}),
        ("GET", "/api/v1/galleries", {}),
        ("POST", "/api/v1/galleries", {"json": {"name": "g2", "authority": "A §1", "approved_by": "Chief",
                                                "approved_on": "2026-01-01", "source": "booking"}}),
        ("GET", f"/api/v1/galleries/{GALLERY}", {}),
        ("POST", f"/api/v1/galleries/{GALLERY}/enroll", {"json": {"path": "gallery"}}),
        ("GET", "/api/v1/audit/verify", {}),
        ("GET", "/api/v1/audit/log", {}),
        ("GET", "/api/v1/audit/report?start=2026-01-01&end=2026-12-31", {}),
        ("POST", "/api/v1/evaluate", {"json": {"path": "gallery"}}),
        ("POST", "/api/v1/purge", {}),
        *[(method, path, kwargs) for method, path, kwargs, _, _ in admin_routes()],
        ("GET", f"/api/v1/galleries/{GALLERY}/index", {}),  # every role may read it: no wrong role to try
    ]


def admin_routes() -> list[tuple[str, str, dict, object, str]]:
    """The routes of the account, purpose, subject-removal and index commands: each with a request body, a
    signed-in user who lacks the role it needs, and the action its refusal is audited under."""
    return [
        ("POST", "/api/v1/users", {"json": {"name": "dana", "roles": ["agent"], "password": PASSWORD}}, ANALYST,
         "user.add"),
        ("GET", "/api/v1/users", {}, AUDITOR, "user.list"),
        ("POST", f"/api/v1/users/{AGENT2.name}/certifications", {"json": {"completed": "2026-01-05"}}, REVIEWER,
         "user.certify"),
        ("POST", f"/api/v1/users/{AGENT2.name}/disable", {}, ANALYST, "user.disable"),
        ("POST", "/api/v1/purposes", {"json": {"name": "wildlife trafficking"}}, AGENT,
         "purposes.add"),
        ("DELETE", f"/api/v1/galleries/{GALLERY}/subjects/barack_obama", {}, AGENT, "gallery.remove-subject"),
        ("POST", f"/api/v1/galleries/{GALLERY}/target-fpir", {"json": {"target": 0.05}}, ANALYST,
         "gallery.target-fpir"),
        ("POST", f"/api/v1/galleries/{GALLERY}/index", {"json": {"index": "Flat"}}, AUDITOR, "index.build"),
        ("GET", f"/api/v1/galleries/{GALLERY}/subjects", {}, AGENT, "gallery.subjects"),
        ("GET", f"/api/v1/galleries/{GALLERY}/flagged", {}, REVIEWER, "gallery.flagged"),
        ("POST", f"/api/v1/users/{AGENT2.name}/roles", {"json": {"role": "reviewer"}}, ANALYST, "user.grant-role"),
        ("DELETE", f"/api/v1/users/{AGENT2.name}/roles/agent", {}, AUDITOR, "user.revoke-role"),
        ("POST", "/api/v1/purge/preview", {}, AUDITOR, "purge.preview"),
    ]


def test_every_route_refuses_without_a_token(api, searched, home):
    for method, path, kwargs in routes(searched):
        for headers in ({}, {"Authorization": "Bearer not-a-real-token"}, {"Authorization": "Basic abc"}):
            answer = api.request(method, path, headers=headers, **kwargs)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["reason"] == "not-signed-in"
    ws = open_workspace(home)
    assert ws.conn.execute("SELECT COUNT(*) FROM searches").fetchone()[0] == 1  # nothing happened
    ws.close()


def test_cookie_session_does_not_open_the_api(api, home):
    """The API takes only a bearer header: a browser's cookie cannot be replayed against it (no CSRF needed)."""
    token = bearer(api, AGENT)["Authorization"].split()[1]
    api.cookies.set("leadmatch_session", token)
    assert api.get("/api/v1/whoami").status_code == 401


def test_another_agents_token_is_refused_where_need_to_know_applies(api, searched, home):
    other = bearer(api, AGENT2)
    for method, path, kwargs in routes(searched):
        if f"/searches/{searched}" in path and "corroborations" not in path and "close" not in path:
            answer = api.request(method, path, headers=other, **kwargs)
            assert answer.status_code == 403, (path, answer.text)
    assert searched not in api.get("/api/v1/searches", headers=other).text
    ws = open_workspace(home)
    refusals = [e for e in audit.entries(ws.conn) if e["outcome"] == "refused" and e["actor"] == AGENT2.name]
    assert len(refusals) >= 3
    ws.close()


def test_wrong_role_is_refused_and_audited(api, searched, home):
    wrong = {  # route → a signed-in user who lacks the role it needs
        ("POST", "/api/v1/searches"): AUDITOR,
        ("POST", f"/api/v1/searches/{searched}/dispositions"): AUDITOR,
        ("POST", f"/api/v1/searches/{searched}/corroborations"): ANALYST,
        ("POST", f"/api/v1/searches/{searched}/close"): AGENT,  # the agent who ran it may never close it
        ("POST", "/api/v1/galleries"): AGENT,
        ("POST", f"/api/v1/galleries/{GALLERY}/enroll"): AGENT,
        ("GET", "/api/v1/audit/verify"): AGENT,
        ("GET", "/api/v1/audit/log"): ANALYST,
        ("GET", "/api/v1/audit/report?start=2026-01-01&end=2026-12-31"): REVIEWER,
        ("POST", "/api/v1/evaluate"): AGENT,
        ("POST", "/api/v1/purge"): AUDITOR,
    }
    tokens = {actor.name: bearer(api, actor) for actor in set(wrong.values())}
    for method, path, kwargs in routes(searched):
        if (method, path) in wrong:
            answer = api.request(method, path, headers=tokens[wrong[(method, path)].name], **kwargs)
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["error"]["exit_code"] == 3
    ws = open_workspace(home)
    assert ws.conn.execute("SELECT status FROM searches WHERE id = ?", (searched,)).fetchone()[0] == \
        "awaiting-disposition"
    reasons = {e["reason"].split(":")[0] for e in audit.entries(ws.conn) if e["outcome"] == "refused"}
    assert {"wrong-role", "own-search"} <= reasons or "wrong-role" in reasons
    ws.close()


def test_the_whole_story_through_the_api(api, home):
    agent = bearer(api, AGENT)
    answer = api.post("/api/v1/searches", headers=agent, data=SEARCH_FIELDS,
                      files={"probe": ("obama-720p.jpg", (PROBES_DIR / "obama-720p.jpg").read_bytes())})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["probe"]["name"] == "obama-720p.jpg"  # the uploader's name, not a server path
    assert [c["label"] for c in found["candidates"]] == [LABEL] * 3
    assert found["candidates"][0]["subject"] == "barack_obama"
    sid = found["search_id"]
    several = api.post("/api/v1/searches", headers=agent, data=SEARCH_FIELDS,
                       files={"probe": ("kit_with_rose.jpg", (PROBES_DIR / "kit_with_rose.jpg").read_bytes())})
    assert several.status_code == 409 and len(several.json()["error"]["faces"]) == 2
    assert several.json()["error"]["exit_code"] == 4
    for c in found["candidates"]:
        decision = "possible-lead" if c["rank"] == 1 else "excluded"
        ok = api.post(f"/api/v1/searches/{sid}/dispositions", headers=agent,
                      json={"rank": c["rank"], "decision": decision, "note": "Compared face shape and ears."})
        assert ok.status_code == 200, ok.text
    reviewer = bearer(api, REVIEWER)
    assert api.post(f"/api/v1/searches/{sid}/corroborations", headers=reviewer, json={
        "rank": 1, "evidence_type": "fingerprints", "evidence": "Latent from the counter matches.",
        "reference": "LAB-1", "outcome": "corroborated"}).status_code == 200
    closed = api.post(f"/api/v1/searches/{sid}/close", headers=reviewer,
                      json={"outcome": "identified", "rank": 1, "note": "Corroborated by LAB-1."})
    assert closed.json()["status"] == "closed-identified"
    report = api.get(f"/api/v1/searches/{sid}/report", headers=reviewer)
    assert report.status_code == 200 and report.text.count(LABEL) >= 4
    auditor = bearer(api, AUDITOR)
    assert api.get("/api/v1/audit/verify", headers=auditor).json()["ok"] is True
    log = api.get("/api/v1/audit/log", headers=auditor, params={"case": "API-1"}).json()
    assert {"search", "disposition", "corroborate", "close", "report"} <= {e["action"] for e in log}
    assert api.get("/api/v1/audit/report", headers=auditor,
                   params={"start": "2026-01-01", "end": "2099-12-31"}).json()["searches_by_user"]
    assert not list((home / "uploads").glob("*/*"))  # every upload went once its search was done


def test_bad_fields_get_one_clear_message(api, searched):
    agent = bearer(api, AGENT)
    bad_k = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "top_k": "abc"},
                     files={"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes())})
    assert bad_k.status_code == 400 and "top_k 'abc' is not a whole number" in bad_k.json()["error"]["message"]
    bad_face = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "face": "abc"},
                        files={"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes())})
    assert bad_face.status_code == 400 and "face 'abc'" in bad_face.json()["error"]["message"]
    bad_rank = api.post(f"/api/v1/searches/{searched}/dispositions", headers=agent,
                        json={"rank": "abc", "decision": "excluded", "note": "Different ears."})
    assert bad_rank.status_code == 400 and "rank" in bad_rank.json()["error"]["message"]


def test_sign_in_throttling_engages_after_five_failures_and_is_audited(home):
    """Per account at an address (the full rules, the address counter and restarts: test_signin_throttle.py)."""
    app = create_app(home, workers=1, throttle=signin.SignInThrottle(clock=lambda: 1_800_000_000.0))  # time stands
    with TestClient(app, client=("10.0.0.1", 5000)) as first, TestClient(app, client=("10.0.0.2", 5000)) as second:
        for _ in range(5):
            assert first.post("/api/v1/login", json={"name": AGENT.name, "password": "wrong guess"}).status_code == 401
        throttled = first.post("/api/v1/login", json={"name": AGENT.name, "password": PASSWORD})
        assert throttled.status_code == 429, throttled.text
        assert "wait" in throttled.json()["error"]["hint"] and throttled.json()["error"]["reason"] == "throttled"
        # the guesser's address only: the account signs in from elsewhere, and others from the same address
        assert second.post("/api/v1/login", json={"name": AGENT.name, "password": PASSWORD}).status_code == 200
        assert first.post("/api/v1/login", json={"name": REVIEWER.name, "password": PASSWORD}).status_code == 200
    ws = open_workspace(home)
    reasons = [e["reason"].split(":")[0] for e in audit.entries(ws.conn) if e["action"] == "login" and e["reason"]]
    assert reasons == ["bad-credentials"] * 5 + ["throttled"]
    ws.close()


def test_request_size_is_limited(home):
    with TestClient(create_app(home, max_body_bytes=1024 * 1024, max_search_bytes=2 * 1024 * 1024)) as small:
        agent = bearer(small, AGENT)
        answer = small.post("/api/v1/searches", headers=agent, data=SEARCH_FIELDS,
                            files={"probe": ("big.mp4", b"\xff" * (3 * 1024 * 1024))})
        assert answer.status_code == 413 and "larger than 2 MiB" in answer.json()["error"]["message"]
        assert "cut the clip" in answer.json()["error"]["hint"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        other = small.post("/api/v1/audit/verify", headers={**agent, "Content-Type": "application/json"},
                           content=b"{" + b" " * (2 * 1024 * 1024) + b"}")  # not a search: the general limit
        assert other.status_code == 413 and "larger than 1 MiB" in other.json()["error"]["message"]


def bomb_png() -> bytes:
    """A 9400×9400 PNG of about 86 KB: tiny on disk, 88 megapixels once decoded."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (9400, 9400)).save(out, "PNG", optimize=True)
    return out.getvalue()


def test_decompression_bomb_errors_while_other_requests_are_answered(home, tmp_path):
    """A real server: the bomb is decoded in a worker process while the event loop keeps answering."""
    from .helpers import free_port, start_server

    data = bomb_png()
    assert len(data) < 200_000
    server, url = start_server(home, free_port())
    try:
        token = _login(url, AGENT)
        outcome = {}

        def send_bomb():
            started = time.monotonic()
            try:
                _post_search(url, token, "bomb.png", data)
                outcome["status"] = 200
            except urllib.error.HTTPError as exc:
                outcome["status"], outcome["body"] = exc.code, exc.read().decode()
            outcome["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=send_bomb)
        thread.start()
        time.sleep(1.0)  # the bomb is being decoded now
        waits = []
        for _ in range(3):
            started = time.monotonic()
            with urllib.request.urlopen(urllib.request.Request(
                    url + "/api/v1/whoami", headers={"Authorization": "Bearer " + token}), timeout=30) as r:
                assert r.status == 200
            waits.append(time.monotonic() - started)
        thread.join(300)
        assert outcome["status"] in (400, 403, 413), outcome
        assert max(waits) < 1.0, (waits, outcome)
        print(f"bomb answered {outcome['status']} in {outcome['seconds']:.1f} s; concurrent whoami {waits}")
    finally:
        server.terminate()
        server.wait(10)


def _login(url: str, actor) -> str:
    import json

    request = urllib.request.Request(url + "/api/v1/login", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"name": actor.name, "password": PASSWORD}).encode())
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())["token"]


def _post_search(url: str, token: str, name: str, data: bytes):
    from leadmatch.cli.backends import _multipart

    body, kind = _multipart(SEARCH_FIELDS, [("probe", name, data)])
    request = urllib.request.Request(url + "/api/v1/searches", method="POST", data=body,
                                     headers={"Content-Type": kind, "Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=300) as r:
        return r.read()


# Video probes, several stills, checkpoints ---------------------------------------------------------------

from .helpers import (
    FACES,  # noqa: E402
    still_clip,  # noqa: E402
)

CLIP = FACES / "video" / "short_hamilton_clip.mp4"


def test_video_search_through_the_api(api, home):
    agent = bearer(api, AGENT)
    answer = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "best_frames": "4", "every": "0.2",
                                                          "track": "largest"},
                      files={"probe": ("short_hamilton_clip.mp4", CLIP.read_bytes(), "video/mp4")})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    top = found["candidates"][0]
    assert top["subject"] == "lin_manuel_miranda" and top["label"] == LABEL and top["lead_only"] is True
    probe = found["probe"]
    assert probe["kind"] == "video" and probe["name"] == "short_hamilton_clip.mp4" and len(probe["frames"]) == 4
    assert probe["description"].startswith("frames ") and "of short_hamilton_clip.mp4" in probe["description"]
    assert found["details"]["video"]["every_s"] == 0.2
    left = list((home / "uploads").glob("*"))  # the clip's upload goes once the search kept its frames; its
    assert [p.name[:10] for p in left] == [".analysis-"]  # analysis waits a while for a search after a track pick


def test_clip_with_two_people_answers_409_listing_the_tracks(api, home, tmp_path):
    clip = still_clip(tmp_path / "two.mp4", [PROBES_DIR / "johnsnow_test1.jpg", PROBES_DIR / "obama1.jpg"])
    agent = bearer(api, AGENT)
    files = {"probe": ("two.mp4", clip.read_bytes(), "video/mp4")}
    asked = api.post("/api/v1/searches", headers=agent, data=SEARCH_FIELDS, files=files)
    assert asked.status_code == 409, asked.text
    error = asked.json()["error"]
    assert error["kind"] == "FaceChoiceNeeded" and error["exit_code"] == 4 and "2 face tracks" in error["message"]
    assert [t["track"] for t in error["faces"]] == [1, 2] and error["faces"][1]["start_s"] >= 0.9
    kept = list((home / "uploads").glob(".analysis-*.json"))
    assert len(kept) == 1
    before = kept[0].stat()
    picked = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "track": "2"}, files=files)
    assert picked.status_code == 200, picked.text
    after = kept[0].stat()  # the upload again, but the clip is not decoded again: the kept analysis answered
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert picked.json()["candidates"][0]["subject"] == "barack_obama"
    assert picked.json()["details"]["video"]["track"] == 2
    wrong = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "track": "7"}, files=files)
    assert wrong.status_code == 400 and "--track 7 does not exist" in wrong.json()["error"]["message"]


def test_several_stills_through_the_api(api):
    agent = bearer(api, AGENT)
    files = [("probe", ("obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")),
             ("probe", ("obama3.jpg", (PROBES_DIR / "obama3.jpg").read_bytes(), "image/jpeg"))]
    answer = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "fusion": "min"}, files=files)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    top = found["candidates"][0]
    assert found["probe"]["kind"] == "stills" and [f["source"] for f in found["probe"]["frames"]] == [
        "obama1.jpg", "obama3.jpg"]
    assert top["subject"] == "barack_obama" and abs(top["distance"] - min(top["probe_distances"])) < 1e-4
    assert found["details"]["fusion"] == "min" and any("several stills" in f for f in found["flags"])
    per_photo = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, "per_photo": "true"},
                         files=files[:1])
    assert per_photo.status_code == 200 and per_photo.json()["candidate_list"] == "photo"


def test_bad_video_options_get_one_clear_message(api):
    agent = bearer(api, AGENT)
    files = {"probe": ("short_hamilton_clip.mp4", CLIP.read_bytes(), "video/mp4")}
    for field, value, expected in (("every", "soon", "every 'soon' is not a number"),
                                   ("every", "60", "every 60 is out of range"),
                                   ("best_frames", "99", "best_frames 99 is out of range"),
                                   ("track", "first", "track 'first' is not a whole number"),
                                   ("per_photo", "maybe", "per_photo 'maybe' is not true or false"),
                                   ("fusion", "median", "--fusion 'median' is not known")):
        answer = api.post("/api/v1/searches", headers=agent, data={**SEARCH_FIELDS, field: value}, files=files)
        assert answer.status_code == 400 and expected in answer.json()["error"]["message"], (field, answer.text)
    both = api.post("/api/v1/searches", headers=agent, data=SEARCH_FIELDS, files=[
        ("probe", ("a.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")),
        ("probe", ("short_hamilton_clip.mp4", CLIP.read_bytes(), "video/mp4"))])
    assert both.status_code == 400 and "a video and other probes" in both.json()["error"]["message"]


def test_checkpoint_through_the_api_is_signed_and_verifies(api, home):
    assert api.post("/api/v1/audit/checkpoint", headers=bearer(api, AGENT)).status_code == 403
    auditor = bearer(api, AUDITOR)
    made = api.post("/api/v1/audit/checkpoint", headers=auditor)
    assert made.status_code == 200, made.text
    filed = made.json()
    assert {"entry", "hash", "at"} <= set(filed)
    checked = api.post("/api/v1/audit/verify", headers=auditor, json={"checkpoint": filed})
    assert checked.status_code == 200 and checked.json()["ok"] and checked.json()["checkpoint"] == filed["entry"]
    forged = api.post("/api/v1/audit/verify", headers=auditor, json={"checkpoint": {**filed, "hash": "0" * 64}})
    assert forged.status_code in (200, 400) and not forged.json().get("ok", False)


def test_client_refuses_a_clip_over_the_upload_limit_before_sending_it(tmp_path):
    from leadmatch.cli import backends as client
    from leadmatch.errors import PhotoError

    big = tmp_path / "long.mp4"
    with open(big, "wb") as handle:  # sparse: 600 MiB on paper, nothing on disk
        handle.truncate(600 * 1024 * 1024)
    remote = client.Remote("http://127.0.0.1:9")  # nothing listens there: the refusal must come first
    with pytest.raises(PhotoError) as refused:
        remote.search(search_request(big))
    assert "larger than the service accepts (512 MiB)" in str(refused.value) and refused.value.reason == "too-large"


def _children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (read from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_decoding_workers_end_with_the_service_even_when_it_is_killed(home):
    """The worker processes a search started do not outlive the service (stopped or killed -9)."""
    import signal

    from .helpers import free_port, start_server

    server, url = start_server(home, free_port())
    try:
        token = _login(url, AGENT)
        _post_search(url, token, "obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes())
        workers = _children(server.pid)
        assert workers, "a search runs in a worker process"
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "decoding workers outlived the killed service"


def test_admin_routes_refuse_the_wrong_role_change_nothing_and_are_audited(api, home):
    ws = open_workspace(home)
    before = {table: ws.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("users", "certifications", "purposes", "subjects", "faces")}
    built = index_info(ws)
    ws.close()
    tokens = {}
    for method, path, kwargs, wrong, action in admin_routes():
        tokens.setdefault(wrong.name, bearer(api, wrong))
        answer = api.request(method, path, headers=tokens[wrong.name], **kwargs)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"]["exit_code"] == 3 and answer.json()["error"]["reason"] == "wrong-role"
    ws = open_workspace(home)
    assert before == {table: ws.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in before}
    assert index_info(ws) == built  # the refused build trained nothing
    assert ws.conn.execute("SELECT disabled_at FROM users WHERE name = ?", (AGENT2.name,)).fetchone()[0] is None
    refused = {e["action"] for e in audit.entries(ws.conn)
               if e["outcome"] == "refused" and (e["reason"] or "").startswith("wrong-role")}
    assert {action for *_, action in admin_routes()} <= refused
    ws.close()


def index_info(ws) -> list:
    """The record of index builds and each gallery's target false-alarm rate."""
    return ([tuple(r) for r in ws.conn.execute("SELECT * FROM index_builds ORDER BY rowid")]
            + [tuple(r) for r in ws.conn.execute("SELECT name, target_fpir FROM galleries ORDER BY name")])


def test_accounts_purposes_subjects_and_index_through_the_api(api, home):
    admin = bearer(api, ADMIN)
    added = api.post("/api/v1/users", headers=admin, json={"name": "dana", "roles": ["agent"], "password": PASSWORD})
    assert added.status_code == 200 and added.json() == {"user": "dana", "roles": ["agent"]}, added.text
    again = api.post("/api/v1/users", headers=admin, json={"name": "dana", "roles": ["agent"], "password": PASSWORD})
    assert again.status_code == 400 and "already" in again.json()["error"]["message"]
    weak = api.post("/api/v1/users", headers=admin, json={"name": "eve", "roles": ["agent"], "password": "short"})
    assert weak.status_code == 400 and weak.json()["error"]["exit_code"] == 1
    certified = api.post("/api/v1/users/dana/certifications", headers=admin, json={"completed": "2026-01-05"})
    assert certified.status_code == 200 and certified.json()["expires"] == "2027-01-05", certified.text
    future = api.post("/api/v1/users/dana/certifications", headers=admin, json={"completed": "2099-01-01"})
    assert future.status_code == 400 and "future" in future.json()["error"]["message"]
    users = {u["name"]: u for u in api.get("/api/v1/users", headers=admin).json()}
    assert users["dana"]["roles"] == ["agent"] and users["dana"]["certification"]["expires"] == "2027-01-05"
    assert api.post("/api/v1/purposes", headers=admin, json={"name": "Wildlife Trafficking"}).json() == \
        {"purpose": "wildlife trafficking"}
    assert "wildlife trafficking" in api.get("/api/v1/purposes", headers=admin).json()
    assert api.post("/api/v1/purposes", headers=admin, json={"name": "arson"}).status_code == 400  # already there
    retired = api.post("/api/v1/purposes/wildlife%20trafficking/retire", headers=admin)
    assert retired.status_code == 200 and retired.json()["name"] == "wildlife trafficking", retired.text
    assert "wildlife trafficking" not in api.get("/api/v1/purposes", headers=admin).json()
    assert [p["name"] for p in api.get("/api/v1/purposes/retired", headers=admin).json()] == ["wildlife trafficking"]
    agent = bearer(api, AGENT)
    assert api.post("/api/v1/purposes/arson/retire", headers=agent).status_code == 403  # admins only
    dana = api.post("/api/v1/login", json={"name": "dana", "password": PASSWORD})
    assert dana.status_code == 200
    granted = api.post("/api/v1/users/dana/roles", headers=admin, json={"role": "reviewer"})
    assert granted.status_code == 200 and granted.json() == {"user": "dana", "roles": ["agent", "reviewer"]}
    assert api.delete("/api/v1/users/dana/roles/reviewer", headers=admin).json()["roles"] == ["agent"]
    last = api.delete("/api/v1/users/dana/roles/agent", headers=admin)
    assert last.status_code == 403 and last.json()["error"]["reason"] == "last-role"
    subjects = api.get(f"/api/v1/galleries/{GALLERY}/subjects?contains=obama", headers=admin).json()
    assert subjects["total"] == 1 and subjects["subjects"][0]["faces"] == 2
    assert api.get(f"/api/v1/galleries/{GALLERY}/flagged", headers=admin).json() == []
    assert api.post("/api/v1/purge/preview", headers=admin).json()["searches"] == []
    assert api.post("/api/v1/users/dana/disable", headers=admin).json() == {"user": "dana"}
    assert api.get("/api/v1/whoami", headers={"Authorization": "Bearer " + dana.json()["token"]}).status_code == 401
    assert api.post("/api/v1/users/admin/disable", headers=admin).json()["error"]["reason"] == "self-disable"
    target = api.post(f"/api/v1/galleries/{GALLERY}/target-fpir", headers=admin, json={"target": 0.05})
    assert target.status_code == 200 and target.json()["target_fpir"] == 0.05, target.text

    analyst = bearer(api, ANALYST)
    status = api.get(f"/api/v1/galleries/{GALLERY}/index", headers=analyst).json()
    faces = status["faces"]
    assert status["gallery"] == GALLERY and faces > 0
    built = api.post(f"/api/v1/galleries/{GALLERY}/index", headers=analyst, json={"index": "Flat"})
    assert built.status_code == 200 and built.json()["factory"] == "Flat" and built.json()["faces"] == faces
    rebuilt = api.post(f"/api/v1/galleries/{GALLERY}/index", headers=analyst, json={})
    assert rebuilt.status_code == 200 and rebuilt.json()["factory"] == "Flat", rebuilt.text
    bad = api.post(f"/api/v1/galleries/{GALLERY}/index", headers=analyst, json={"index": "NoSuchIndex,,"})
    assert bad.status_code == 400 and bad.json()["error"]["exit_code"] == 1, bad.text
    removed = api.delete(f"/api/v1/galleries/{GALLERY}/subjects/barack_obama", headers=analyst)
    assert removed.status_code == 200 and removed.json()["faces_removed"] >= 1, removed.text
    after = api.get(f"/api/v1/galleries/{GALLERY}/index", headers=analyst).json()
    assert after["faces"] == faces - removed.json()["faces_removed"] and after["type"] == "Flat"
    gone = api.delete(f"/api/v1/galleries/{GALLERY}/subjects/barack_obama", headers=analyst)
    assert gone.status_code == 404 and gone.json()["error"]["message"].startswith("no subject")
    assert api.post("/api/v1/purge", headers=admin).json()["purged_searches"] == []
    ws = open_workspace(home)
    done = {e["action"] for e in audit.entries(ws.conn) if e["outcome"] == "ok"}
    assert {"user.add", "user.certify", "user.disable", "purposes.add", "gallery.target-fpir", "index.build",
            "gallery.remove-subject"} <= done
    ws.close()
