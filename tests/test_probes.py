"""Probes as investigators get them: a video clip, several stills of one person, a candidate list of people."""

from __future__ import annotations

import json

import pytest

from leadmatch.errors import FaceChoiceNeeded
from leadmatch.governance import retention
from leadmatch.record.workspace import open_workspace
from leadmatch.search import run as searching

from .helpers import (
    ACTOR,
    ADMIN,
    AGENT,
    FACES,
    GALLERY_DIR,
    LABEL,
    PROBES_DIR,
    assert_clean_error,
    cli_search,
    login,
    search_request,
    still_clip,
)

CLIP = FACES / "video" / "short_hamilton_clip.mp4"


def test_sample_clip_puts_lin_manuel_miranda_first_within_threshold(home):
    login(home, AGENT)
    # Two searchable tracks, split by the cut: the far shot (0.1–0.6 s) and the close-up (2.8–7.0 s); the blurred
    # audience at the end is listed as not searchable. The agent picks, as with several faces in a photo.
    asked = cli_search(home, CLIP)
    assert_clean_error(asked, "3 face tracks (2 searchable)", "--track", code=4)
    assert "not searchable" in asked.stderr
    result = cli_search(home, CLIP, "--track", "largest", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    top = found["candidates"][0]
    assert top["subject"] == "lin_manuel_miranda" and top["within_threshold"], top
    assert top["label"] == LABEL and top["lead_only"] is True
    # Provenance: the clip's sha256, and each frame used with its time, box and quality, kept as an image.
    probe = found["probe"]
    assert probe["kind"] == "video" and probe["sha256"] == found["details"]["video"]["sha256"]
    assert len(probe["frames"]) == 5 and all(3.0 <= f["time_s"] <= 7.5 for f in probe["frames"])
    assert "of short_hamilton_clip.mp4" in probe["description"] and "frames" in probe["description"]
    # Mean-embedding fusion (the default, chosen by benchmarks/fusion.py): the distance to the mean of the
    # frames is no larger than the mean of the per-frame distances (the triangle inequality), often smaller.
    assert len(top["probe_distances"]) == 5 and found["details"]["fusion"] == "mean"
    assert top["distance"] <= sum(top["probe_distances"]) / 5 + 1e-4
    ws = open_workspace(home)
    stored = json.loads(ws.conn.execute("SELECT probe_frames FROM searches WHERE id = ?",
                                        (found["search_id"],)).fetchone()[0])
    assert all((home / f["stored_path"]).is_file() for f in stored)
    text = cli_search(home, CLIP, "--track", "largest")
    assert "probe: frames" in text.stdout and "short_hamilton_clip.mp4" in text.stdout


def test_clip_with_two_people_asks_which_track_then_searches_it(home, tmp_path):
    clip = still_clip(tmp_path / "two.mp4", [PROBES_DIR / "johnsnow_test1.jpg", PROBES_DIR / "obama1.jpg"])
    login(home, AGENT)
    asked = cli_search(home, clip)
    assert_clean_error(asked, "2 face tracks", "--track", code=4)
    assert "track 1: 0.0" in asked.stderr and "track 2: 1.0" in asked.stderr
    picked = cli_search(home, clip, "--track", "2", "--json")
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["candidates"][0]["subject"] == "barack_obama"
    first = json.loads(cli_search(home, clip, "--track", "1", "--json").stdout)
    assert first["candidates"][0]["subject"] == "kit_harington"
    assert_clean_error(cli_search(home, clip, "--track", "7"), "--track 7 does not exist")


def test_clip_without_usable_face_is_refused_and_audited(ws, tmp_path):
    clip = still_clip(tmp_path / "none.mp4", [GALLERY_DIR / "joe_biden" / "biden.jpg"], size=(96, 54))
    with pytest.raises(Exception) as err:
        searching.run(ws, ACTOR, search_request(clip))
    assert "no face found in 10 sampled frames" in str(err.value)
    last = ws.conn.execute("SELECT outcome, reason FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert last["outcome"] == "refused" and "no face found" in last["reason"]


def test_several_stills_of_one_person_are_searched_together(ws):
    request = search_request("obama1.jpg", more_probes=(PROBES_DIR / "obama3.jpg",))
    result = searching.run(ws, ACTOR, request)
    top = result["candidates"][0]
    assert top["subject"] == "barack_obama" and len(top["probe_distances"]) == 2
    closest = searching.run(ws, ACTOR, search_request("obama1.jpg", more_probes=(PROBES_DIR / "obama3.jpg",),
                                                      fusion="min"))["candidates"][0]
    assert closest["subject"] == "barack_obama"
    assert abs(closest["distance"] - min(closest["probe_distances"])) < 1e-4
    assert result["probe"]["kind"] == "stills" and len(result["probe"]["frames"]) == 2
    assert any("several stills" in f for f in result["flags"])


def test_stills_with_several_faces_need_a_pick(ws):
    with pytest.raises(FaceChoiceNeeded):
        searching.run(ws, ACTOR, search_request("obama1.jpg", more_probes=(PROBES_DIR / "two_people.jpg",)))


def test_candidates_are_people_and_per_photo_keeps_photos(ws):
    subjects = searching.run(ws, ACTOR, search_request("johnsnow_test1.jpg", top_k=3))
    names = [c["subject"] for c in subjects["candidates"]]
    assert names[0] == "kit_harington" and len(set(names)) == 3
    kit = subjects["candidates"][0]
    assert kit["also_matched"] == 1 and kit["faces"][1]["distance"] > kit["distance"]
    photos = searching.run(ws, ACTOR, search_request("johnsnow_test1.jpg", top_k=3, per_photo=True))
    per_photo = [c["subject"] for c in photos["candidates"]]
    assert per_photo[:2] == ["kit_harington", "kit_harington"]
    assert photos["candidate_list"] == "photo" and "faces" not in photos["candidates"][0]


def test_searches_recorded_before_subject_lists_show_as_photo_lists(ws):
    result = searching.run(ws, ACTOR, search_request("johnsnow_test1.jpg", top_k=3))
    ws.conn.execute("UPDATE candidates SET faces = NULL, probe_distances = NULL WHERE search_id = ?",
                    (result["search_id"],))
    details = {k: v for k, v in result["details"].items() if k not in ("candidate_list",)}
    ws.conn.execute("UPDATE searches SET details = ?, probe_frames = NULL WHERE id = ?",
                    (json.dumps(details), result["search_id"]))
    again = searching.show(ws, ACTOR, result["search_id"])
    assert again["candidate_list"] == "photo" and again["probe"]["frames"] == []
    assert "faces" not in again["candidates"][0]


def test_purge_removes_stored_frames(ws, tmp_path):
    result = searching.run(ws, ACTOR, search_request(CLIP, track="largest"))
    stored = json.loads(ws.conn.execute("SELECT probe_frames FROM searches WHERE id = ?",
                                        (result["search_id"],)).fetchone()[0])
    ws.conn.execute("UPDATE searches SET status = 'closed-no-identification', closed_at = '2000-01-01T00:00:00Z' "
                    "WHERE id = ?", (result["search_id"],))
    purged = retention.purge_expired(ws, ADMIN)
    assert result["search_id"] in purged["purged_searches"]
    assert not any((ws.home / f["stored_path"]).exists() for f in stored)


def test_report_names_the_clip_and_every_frame(ws):
    from leadmatch.search import report
    result = searching.run(ws, ACTOR, search_request(CLIP, track="largest"))
    html = report.render(ws, ACTOR, result["search_id"])
    assert "of short_hamilton_clip.mp4" in html and result["probe"]["sha256"] in html
    assert html.count('alt="probe face ') == len(result["probe"]["frames"])
    assert "distance per probe face" in html and "also matched" in html
    assert html.count("INVESTIGATIVE LEAD ONLY") >= len(result["candidates"]) + 2


LFW = FACES.parent / "lfw-dev"


def test_a_face_hog_misses_is_searched_after_the_cnns_second_look(home, tmp_path):
    """HOG finds no face in this lfw-dev photo at any probe size; the CNN's second look does, and the search
    runs, saying so on the list, instead of refusing the photo as faceless."""
    from leadmatch.biometrics import faces
    from leadmatch.biometrics.photos import load

    probe = tmp_path / "montgomerie.jpg"
    probe.write_bytes((LFW / "Colin_Montgomerie" / "Colin_Montgomerie_0004.jpg").read_bytes())
    assert faces.detect(load(probe).pixels, min_face_px=40, detector="hog") == []
    login(home, AGENT)
    result = cli_search(home, probe, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert any("CNN detector's second look (HOG found none): montgomerie.jpg" in f for f in found["flags"])
    assert found["probe"]["frames"][0]["detector"] == "cnn"
    assert found["candidates"] and all(c["label"] == LABEL for c in found["candidates"])
    text = cli_search(home, probe)
    assert text.returncode == 0 and "CNN detector's second look" in text.stdout
    asked = json.loads(cli_search(home, probe, "--detector", "cnn", "--json").stdout)  # asked for: no flag
    assert not any("second look" in f for f in asked["flags"]) and asked["probe"]["frames"][0]["detector"] == "cnn"
