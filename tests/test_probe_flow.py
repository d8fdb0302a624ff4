"""What a probe goes through before its search is recorded: errors that name their field, a face or track pick
audited as a question (not a refusal), a clip analysed once and kept for the search after the pick, its
progress reported while it is decoded, its frames in time order."""

from __future__ import annotations

import json
import stat

import pytest

from leadmatch import wire
from leadmatch.errors import FaceChoiceNeeded, LeadmatchError
from leadmatch.record import audit
from leadmatch.search import probes
from leadmatch.search import run as searching
from leadmatch.web import forms, wording

from .helpers import (
    ACTOR,
    AUDITOR,
    GALLERY_DIR,
    PROBES_DIR,
    assert_clean_error,
    cli_search,
    login,
    run_cli,
    search_request,
    still_clip,
)


@pytest.fixture
def two_people_clip(tmp_path):
    """A 2 s clip: kit_harington for a second, then (after a cut) barack_obama: two searchable tracks."""
    return still_clip(tmp_path / "two.mp4", [PROBES_DIR / "johnsnow_test1.jpg", PROBES_DIR / "obama1.jpg"])


def test_a_kept_analysis_is_reused_after_the_pick_and_answers_alike(two_people_clip, tmp_path):
    kept = tmp_path / "upload"
    kept.mkdir()
    told: list[tuple[float, float]] = []
    with pytest.raises(FaceChoiceNeeded) as asked:
        probes.from_video(two_people_clip, None, "hog", 0.1, 5, [], kept=kept, progress=lambda *a: told.append(a))
    assert [t["track"] for t in asked.value.faces] == [1, 2] and asked.value.field == "track"
    # progress while decoding: seconds done rising to the clip's length, which the container gave
    assert len(told) == 20 + 1 and told[0][0] == 0.0 and 1.8 <= told[-2][0] < told[-1][0] == told[-1][1] <= 2.1
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    files = list(kept.glob(".analysis-*.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600  # private, like the upload
    before = files[0].stat()

    again: list = []
    picked = probes.from_video(two_people_clip, 2, "hog", 0.1, 5, [], kept=kept, progress=lambda *a: again.append(a))
    assert again == []  # not decoded again: the kept analysis answered
    after = files[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not rewritten

    fresh = probes.from_video(two_people_clip, 2, "hog", 0.1, 5, [])  # nothing kept: analysed afresh
    assert [p.time_s for p in picked.faces] == [p.time_s for p in fresh.faces]
    assert all((a.face.embedding == b.face.embedding).all() and a.face.box == b.face.box and a.image == b.image
               for a, b in zip(picked.faces, fresh.faces))
    assert picked.video == fresh.video and picked.lead == fresh.lead

    # another sampling step is another analysis: analysed (and kept) anew, never the wrong one reused
    other: list = []
    probes.from_video(two_people_clip, 2, "hog", 0.2, 5, [], kept=kept, progress=lambda *a: other.append(a))
    assert len(other) == 10 + 1 and len(list(kept.glob(".analysis-*.json"))) == 2


def test_a_damaged_kept_analysis_is_analysed_again(two_people_clip, tmp_path):
    kept = tmp_path / "upload"
    kept.mkdir()
    with pytest.raises(FaceChoiceNeeded):
        probes.from_video(two_people_clip, None, "hog", 0.1, 5, [], kept=kept)
    [path] = kept.glob(".analysis-*.json")
    path.write_text("{not json", encoding="utf-8")
    told: list = []
    picked = probes.from_video(two_people_clip, 1, "hog", 0.1, 5, [], kept=kept, progress=lambda *a: told.append(a))
    assert told and picked.video["track"] == 1 and json.loads(path.read_text())["key"].startswith("v1:")


def test_a_clips_frames_are_in_time_order_and_the_best_leads(two_people_clip):
    picked = probes.from_video(two_people_clip, 1, "hog", 0.1, 5, [])
    times = [p.time_s for p in picked.faces]
    assert times == sorted(times) and len(times) == 5
    lead = picked.lead_face
    assert all(lead.face.size_px >= p.face.size_px or lead is p for p in picked.faces)
    assert picked.describe().startswith("frames " + ", ".join(f"{t:.1f} s" for t in times))


def test_a_pick_is_audited_as_a_question_not_a_refusal(ws):
    with pytest.raises(FaceChoiceNeeded):
        searching.run(ws, ACTOR, search_request("two_people.jpg"))
    last = ws.conn.execute("SELECT outcome, reason, objects FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert last["outcome"] == "choice-needed" and last["reason"].startswith("choice-needed: two_people.jpg holds 2")
    assert len(json.loads(last["objects"])["faces"]) == 2
    assert audit.verify(ws.conn).ok  # chained and keyed like every entry
    with pytest.raises(LeadmatchError):
        searching.run(ws, ACTOR, search_request("obama1.jpg", probe_source="sketch"))  # a real refusal
    # an entry from before the outcome existed: a pick logged as a refused search, with the faces to pick from
    audit.record(ws.conn, ACTOR.name, "search", "refused", objects={"faces": [{"face": 1}, {"face": 2}]},
                 reason="bad-input: group.jpg holds 2 faces")
    data = audit.report(ws.conn, "2000-01-01", "2999-01-01")
    searches = [r for r in data["refusals_by_reason"] if r["action"] == "search"]
    assert searches == [{"reason": "composite-probe", "action": "search", "count": 1}]
    assert data["choices_asked"] == 2
    assert "choices_asked,face or track picks,2" in audit.report_csv(data)


@pytest.mark.parametrize("overrides, field", [
    ({"case": ""}, "case"), ({"purpose": ""}, "purpose"), ({"purpose": "curiosity"}, "purpose"),
    ({"justification": "because"}, "justification"), ({"traditional_means": "none"}, "traditional_means"),
    ({"probe_source": "sketch"}, "probe_source"), ({"top_k": 60}, "top_k"), ({"fusion": "median"}, "fusion"),
    ({"probe_source": "enhanced"}, "original"), ({"gallery": "nowhere"}, "gallery"),
    ({"face": 7, "probe": PROBES_DIR / "two_people.jpg"}, "face"),
    ({"probe": GALLERY_DIR / "missing.jpg"}, "probe"),
])
def test_every_refusal_of_a_search_names_its_field(ws, overrides, field):
    with pytest.raises(LeadmatchError) as err:
        searching.run(ws, ACTOR, search_request(overrides.pop("probe", "obama1.jpg"), **overrides))
    assert err.value.field == field, str(err.value)
    assert wire.error_from_dict(wire.error_to_dict(err.value)).field == field  # it crosses to the service
    shown = wording.page_error(err.value, forms.SEARCH_LABELS)  # and the page words it without command-line options
    assert shown["field"] == field and shown["label"] == forms.SEARCH_LABELS[field]
    assert "--" not in shown["message"] and "`" not in shown["message"], shown["message"]


def test_a_clip_search_shows_its_progress_as_lines_when_asked(home, two_people_clip):
    login(home, ACTOR)
    quiet = cli_search(home, two_people_clip, "--every", "0.2")
    assert_clean_error(quiet, "2 face tracks", "--track", code=4)  # no progress lines unless asked off a terminal
    shown = cli_search(home, two_people_clip, "--progress")  # another sampling step: a new analysis
    assert shown.returncode == 4, shown.stderr
    lines = shown.stderr.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("error: "))  # then the tracks, a line each
    assert lines[0] == "analysing the clip: 0 % (0.0 of 2.0 s)" and lines[error - 1].startswith("analysing the clip: 100 %")
    assert "2 face tracks" in lines[error]
    picked = cli_search(home, two_people_clip, "--track", "2", "--progress")  # the kept analysis: nothing to show
    assert picked.returncode == 0 and "analysing the clip" not in picked.stderr, picked.stderr


def test_a_face_pick_is_not_counted_in_the_supervisors_report_by_the_cli(home):
    login(home, ACTOR)
    cli_search(home, PROBES_DIR / "two_people.jpg")
    login(home, AUDITOR)
    report = json.loads(run_cli("audit", "report", "--from", "2000-01-01", "--to", "2999-01-01", home=home).stdout)
    assert report["choices_asked"] == 1
    assert not [r for r in report["refusals_by_reason"] if r["action"] == "search"]


@pytest.fixture
def client(home):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from leadmatch.web import create_app

    with TestClient(create_app(home)) as c:
        yield c


def page_sign_in(client, actor) -> str:
    """Sign in through the page; the CSRF token of the signed-in pages."""
    import re

    from .helpers import PASSWORD

    def csrf(page: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    answer = client.post("/login", data={"name": actor.name, "password": PASSWORD,
                                         "csrf": csrf(client.get("/login").text)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return csrf(client.get("/").text)


def test_the_pages_upload_and_progress_routes(client, home):
    """The script's route for a clip: the files kept under a random id (for those who may search only), its
    progress readable by that id, unknown or malformed ids answered plainly."""
    from .helpers import REVIEWER

    token = page_sign_in(client, ACTOR)
    kept = client.post("/search/upload", data={"csrf": token},
                       files={"probe": ("two.jpg", (PROBES_DIR / "two_people.jpg").read_bytes(), "image/jpeg")})
    assert kept.status_code == 200, kept.text
    answer = kept.json()
    assert answer["files"] == ["two.jpg"] and answer["clip"] is False
    assert (home / "uploads" / answer["upload"] / "two.jpg").is_file()
    assert client.get(f"/search/progress/{answer['upload']}").json() == {"state": "waiting"}
    forms.write_progress(home / "uploads" / answer["upload"], {"state": "analysing", "done_s": 1.5, "duration_s": 9.2})
    assert client.get(f"/search/progress/{answer['upload']}").json()["done_s"] == 1.5
    assert client.get(f"/search/progress/{'0' * 32}").json() == {"state": "gone"}
    assert client.get("/search/progress/..%2Fkeys").status_code in (400, 404)
    client.cookies.clear()
    token = page_sign_in(client, REVIEWER)
    refused = client.post("/search/upload", data={"csrf": token},
                          files={"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")})
    assert refused.status_code == 403 and "a new search needs the agent role" in refused.text
    assert len(list((home / "uploads").glob("*"))) == 1  # nothing kept for one who may not search


def test_the_command_line_keeps_a_clips_analysis_for_the_search_after_the_pick(home, two_people_clip):
    """Direct mode: the clip is analysed once; `--track 2` reads the analysis the first search left (private,
    in the workspace's uploads/, swept like an abandoned upload)."""
    login(home, ACTOR)
    asked = cli_search(home, two_people_clip)
    assert_clean_error(asked, "2 face tracks", "--track", code=4)
    files = list((home / "uploads").glob(".analysis-*.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    before = files[0].stat()
    picked = cli_search(home, two_people_clip, "--track", "2", "--json")
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["candidates"][0]["subject"] == "barack_obama"
    after = files[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not analysed again
