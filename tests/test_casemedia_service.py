"""Case media through the service: the CLI's Remote backend against a real `leadmatch serve` (the same library
calls as direct mode, over /api/v1), and the routes' refusals."""

from __future__ import annotations

import json
import warnings

import pytest

from leadmatch.casemedia import export

from .helpers import ADMIN, AGENT, AUDITOR, GALLERY, GALLERY_DIR, MEANS, PASSWORD, REVIEWER, run_cli
from .test_casemedia import CLIP

CASE = "SRV-22"


@pytest.fixture
def served(home):
    from .helpers import free_port, start_server

    process, url = start_server(home, free_port())
    yield url
    process.terminate()
    process.wait(10)


def cli(url: str, *args: str, input: str | None = None):
    return run_cli("--server", url, *args, input=input)


def sign_in(url: str, actor) -> None:
    assert cli(url, "login", actor.name, "--password-stdin", input=PASSWORD + "\n").returncode == 0


def test_the_case_media_story_through_the_service(served, tmp_path):
    url = served
    sign_in(url, AGENT)
    added = cli(url, "media", "add", CASE, str(GALLERY_DIR / "lin_manuel_miranda"), str(CLIP), "--purpose", "robbery",
                "--justification", "Seized phone of the robbery suspect.", "--json")
    assert added.returncode == 0, added.stderr
    report = json.loads(added.stdout)
    assert {a["file"] for a in report["added"]} == {"lin-manuel-miranda.png", "short_hamilton_clip.mp4"}
    assert report["persons"]["persons"] == 1
    people = json.loads(cli(url, "media", "persons", CASE, "--json").stdout)
    label = people["persons"][0]["label"]
    assert people["persons"][0]["tracks"] == 2
    found = cli(url, "media", "search", CASE, label, "--gallery", GALLERY, "--purpose", "robbery",
                "--justification", "Who is the man filmed at the scene?", "--traditional-means", MEANS,
                "--top-k", "3", "--json")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    assert result["candidates"][0]["subject"] == "lin_manuel_miranda" and result["candidates"][0]["within_threshold"]
    assert result["details"]["person"]["label"] == label
    no_reason = cli(url, "media", "drop", CASE, label, "--reason", "")
    assert no_reason.returncode == 3 and no_reason.stderr.startswith("error: ")

    sign_in(url, ADMIN)
    assert cli(url, "policy", "set", "--case-media", "off").returncode == 0
    assert "case media off" in cli(url, "whoami").stdout
    sign_in(url, AGENT)
    refused = cli(url, "media", "add", CASE, str(CLIP), "--purpose", "robbery", "--justification",
                  "Seized phone of the robbery suspect.")
    assert refused.returncode == 3 and "deployment policy" in refused.stderr

    sign_in(url, AUDITOR)
    out = tmp_path / "disclosure"
    done = cli(url, "case", "export", CASE, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert export.verify(out)["ok"]
    assert json.loads((out / "case.json").read_text())["searches"][0]["search_id"] == result["search_id"]


def test_case_routes_refuse_without_a_token_and_the_wrong_role(home):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from leadmatch.web import create_app

    with TestClient(create_app(home, workers=1)) as api:
        for method, path in (("GET", f"/api/v1/cases/{CASE}/persons"), ("POST", f"/api/v1/cases/{CASE}/export"),
                             ("GET", "/api/v1/policy"), ("POST", f"/api/v1/cases/{CASE}/persons/undo")):
            assert api.request(method, path, json={"reason": "x"}).status_code == 401
        token = api.post("/api/v1/login", json={"name": REVIEWER.name, "password": PASSWORD}).json()["token"]
        answer = api.post("/api/v1/policy", json={"changes": {"video_probes": False}},
                          headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 403 and answer.json()["error"]["reason"] == "wrong-role"
        answer = api.post(f"/api/v1/cases/{CASE}/media", headers={"Authorization": f"Bearer {token}"},
                          data={"purpose": "robbery"}, files={"file": ("c.mp4", CLIP.read_bytes())})
        assert answer.status_code == 403 and answer.json()["error"]["reason"] == "wrong-role"
