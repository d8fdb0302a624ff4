"""Case media (issue 22): the sample photos and the sample clip added to a case, grouped into persons, a person
searched; merge/split/drop/undo; media stored by hash and purged with the case; need-to-know and refusals."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from .helpers import ADMIN, AGENT, AGENT2, AUDITOR, FACES, GALLERY, GALLERY_DIR, MEANS, PROBES_DIR, REVIEWER
from leadmatch.casemedia import media, persons
from leadmatch.errors import InputError, NotFound, Refused
from leadmatch.governance import casework
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.search.leads import NOTICE
from leadmatch.search.run import SearchRequest

CASE = "C-22"
CLIP = FACES / "video" / "short_hamilton_clip.mp4"
JUSTIFICATION = "Seized phone of the robbery suspect holds these photos and this clip."


def add_request(*paths, **overrides) -> media.MediaRequest:
    fields = dict(case=CASE, paths=list(paths), purpose="robbery", justification=JUSTIFICATION, workers=1)
    return media.MediaRequest(**{**fields, **overrides})


def person_search_request(**overrides) -> SearchRequest:
    fields = dict(probe=Path(), gallery=GALLERY, case=CASE, purpose="robbery",
                  justification="Who is the man filmed at the scene?", traditional_means=MEANS, top_k=3)
    return SearchRequest(**{**fields, **overrides})


@pytest.fixture(scope="module")
def case_template(enrolled_template, tmp_path_factory) -> tuple[Path, dict]:
    """The enrolled sample workspace with a case built from every sample photo and the sample clip, once."""
    home = tmp_path_factory.mktemp("case") / "home"
    shutil.copytree(enrolled_template, home)
    ws = open_workspace(home)
    report = media.add(ws, AGENT, add_request(GALLERY_DIR, PROBES_DIR, CLIP))
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    return home, report


@pytest.fixture
def case_ws(case_template, tmp_path):
    target = tmp_path / "case-home"
    shutil.copytree(case_template[0], target)
    ws = open_workspace(target)
    yield ws
    ws.close()


def truth_of(appearance: dict) -> str:
    """Who an appearance shows, from the sample data's labels (probes.csv left to right, gallery folders, and
    the clip's README: Lin until 7 s, an audience member after)."""
    name = Path(appearance["file"])
    if appearance["kind"] == "video":
        return "lin_manuel_miranda" if appearance["time_s"] < 7.05 else "clip-audience"
    if name.parent.name != "probes":
        return name.parent.name
    with open(FACES / "probes.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["file"] == f"probes/{name.name}")
    who = row["identities_left_to_right"].split(";")[appearance["face_index"] - 1]
    return f"unknown in {name.name}" if who == "unknown" else who


def test_sample_case_groups_lin_photo_and_both_clip_tracks_into_one_person_and_mixes_no_one(case_ws, case_template):
    report = case_template[1]
    assert {a["kind"] for a in report["added"]} == {"photo", "video"}
    assert report["refused"] == [] and report["tracks"] == 3
    listing = persons.listing(case_ws, AGENT, CASE)
    faces = {r["id"]: dict(r) for r in case_ws.conn.execute("SELECT id, face_index FROM case_faces")}
    for person in listing["persons"]:
        for a in person["appearances"]:
            a["face_index"] = faces[a["face_id"]]["face_index"]
        people = {truth_of(a) for a in person["appearances"]}
        assert len(people) == 1, (person["label"], people)  # no person mixes two people
    lin = [p for p in listing["persons"] if {truth_of(a) for a in p["appearances"]} == {"lin_manuel_miranda"}]
    assert len(lin) == 1, "all of Lin's usable appearances are one person"
    kinds = {(a["kind"], a["track"]) for a in lin[0]["appearances"]}
    assert kinds == {("photo", None), ("video", 1), ("video", 2)}
    assert lin[0]["tracks"] == 2 and lin[0]["files"] == 2
    for a in lin[0]["appearances"]:  # every appearance says where it is: file, sha256, time, box, quality
        assert len(a["sha256"]) == 64 and a["box"] and a["quality"]["size_px"] > 0
        assert (a["time_s"] is None) == (a["kind"] == "photo")
    assert lin[0]["cohesion"]["max_distance"] < 0.6 and lin[0]["best_faces"]


def test_person_search_puts_lin_first_within_threshold_with_the_appearances_as_provenance(case_ws):
    lin = next(p for p in persons.listing(case_ws, AGENT, CASE)["persons"] if p["tracks"] == 2)
    result = persons.search(case_ws, AGENT, CASE, lin["label"], person_search_request())
    top = result["candidates"][0]
    assert top["subject"] == "lin_manuel_miranda" and top["within_threshold"] and top["rank"] == 1
    assert all(c["label"] == NOTICE for c in result["candidates"])
    assert result["probe"]["kind"] == "person" and lin["label"] in result["probe"]["description"]
    assert len(result["probe"]["frames"]) == len(lin["best_faces"])
    person = result["details"]["person"]
    assert person["label"] == lin["label"] and len(person["appearances"]) == len(lin["appearances"])
    assert any(f.startswith(f"case person {lin['label']}") for f in result["flags"])
    # a normal search from here on: the agent must disposition it, and the audit names its case
    assert result["status"] == casework.AWAITING_DISPOSITION
    assert audit.entries(case_ws.conn, search_id=result["search_id"])[-1]["action"] == "search"


def test_media_are_stored_by_hash_the_source_is_untouched_and_a_second_add_skips(case_ws, tmp_path):
    clip = tmp_path / "evidence" / "clip.mp4"
    clip.parent.mkdir()
    shutil.copyfile(CLIP, clip)
    before = (clip.stat().st_mtime_ns, clip.read_bytes())
    row = case_ws.conn.execute("SELECT sha256, stored_path FROM case_media WHERE kind = 'video'").fetchone()
    assert row["stored_path"] == f"photos/{row['sha256'][:2]}/{row['sha256']}.mp4"
    assert (case_ws.home / row["stored_path"]).read_bytes() == CLIP.read_bytes()
    again = media.add(case_ws, AGENT, add_request(clip.parent))
    assert again["skipped"] == ["clip.mp4"] or again["skipped"][0].endswith("clip.mp4")
    assert not again["added"]
    assert (clip.stat().st_mtime_ns, clip.read_bytes()) == before


def test_adding_media_needs_an_agent_a_purpose_and_a_justification_and_each_refusal_is_audited(case_ws):
    with pytest.raises(Refused) as no_role:
        media.add(case_ws, REVIEWER, add_request(PROBES_DIR / "obama1.jpg"))
    assert no_role.value.reason == "wrong-role"
    with pytest.raises(Refused) as purpose:
        media.add(case_ws, AGENT, add_request(PROBES_DIR / "obama1.jpg", purpose="curiosity"))
    assert purpose.value.reason == "unauthorized-purpose"
    with pytest.raises(Refused) as why:
        media.add(case_ws, AGENT, add_request(PROBES_DIR / "obama1.jpg", justification="because"))
    assert why.value.reason == "missing-justification"
    refused = [e for e in audit.entries(case_ws.conn, case=CASE) if e["outcome"] == "refused"]
    assert [e["reason"].split(":")[0] for e in refused[-3:]] == ["wrong-role", "unauthorized-purpose",
                                                                  "missing-justification"]


def test_only_agents_on_the_case_and_overseers_read_its_persons(case_ws):
    assert persons.listing(case_ws, REVIEWER, CASE)["persons"]
    assert persons.listing(case_ws, AUDITOR, CASE)["persons"]
    with pytest.raises(Refused) as other:
        persons.listing(case_ws, AGENT2, CASE)
    assert other.value.reason == "need-to-know"


def test_merge_split_drop_are_recorded_with_who_and_why_and_undo_reverses_each(case_ws):
    listing = persons.listing(case_ws, AGENT, CASE)
    labels = [p["label"] for p in listing["persons"]]
    sizes = {p["label"]: len(p["appearances"]) for p in listing["persons"]}
    first, second = labels[0], labels[1]
    with pytest.raises(Refused) as no_reason:
        persons.merge(case_ws, AGENT, CASE, [first, second], "")
    assert no_reason.value.reason == "missing-reason"

    merged = persons.merge(case_ws, AGENT, CASE, [first, second], "same tattoo on the left hand")
    after = {p["label"]: p for p in persons.listing(case_ws, AGENT, CASE)["persons"]}
    assert second not in after and len(after[first]["appearances"]) == sizes[first] + sizes[second]
    change = next(c for c in persons.listing(case_ws, AGENT, CASE)["changes"] if c["id"] == merged["change"])
    assert (change["action"], change["actor"], change["reason"]) == ("merge", AGENT.name, "same tattoo on the left hand")
    entry = [e for e in audit.entries(case_ws.conn, case=CASE) if e["action"] == "person.merge"][-1]
    assert (entry["actor"], entry["outcome"], entry["reason"]) == (AGENT.name, "ok", "same tattoo on the left hand")

    persons.undo(case_ws, AGENT, CASE, "the tattoo was a shadow")
    restored = {p["label"]: len(p["appearances"]) for p in persons.listing(case_ws, AGENT, CASE)["persons"]}
    assert restored == sizes

    moved = persons.show(case_ws, AGENT, CASE, first)["appearances"][0]["face_id"]
    split = persons.split(case_ws, AGENT, CASE, first, [moved], "different jacket, another man")
    assert persons.show(case_ws, AGENT, CASE, split["new_person"])["appearances"][0]["face_id"] == moved
    persons.undo(case_ws, AGENT, CASE, "same jacket after all")
    assert {p["label"]: len(p["appearances"]) for p in persons.listing(case_ws, AGENT, CASE)["persons"]} == sizes

    persons.drop(case_ws, AGENT, CASE, second, "a poster on the wall, not a person")
    assert second not in {p["label"] for p in persons.listing(case_ws, AGENT, CASE)["persons"]}
    dropped = persons.show(case_ws, AGENT, CASE, second)
    assert dropped["dropped"]["reason"] == "a poster on the wall, not a person"
    with pytest.raises(Refused) as search_dropped:
        persons.search(case_ws, AGENT, CASE, second, person_search_request())
    assert search_dropped.value.reason == "dropped-person"
    persons.undo(case_ws, AGENT, CASE, "it is a person")
    assert second in {p["label"] for p in persons.listing(case_ws, AGENT, CASE)["persons"]}
    with pytest.raises(Refused):
        persons.undo(case_ws, AGENT, CASE, "nothing left")


def test_new_media_join_existing_persons_and_never_move_a_grouped_face(case_ws):
    before = {r[0]: r[1] for r in case_ws.conn.execute("SELECT id, person_id FROM case_faces")}
    lin = next(p for p in persons.listing(case_ws, AGENT, CASE)["persons"] if p["tracks"] == 2)
    copy = case_ws.home / "lin-copy.png"
    from PIL import Image

    Image.open(GALLERY_DIR / "lin_manuel_miranda" / "lin-manuel-miranda.png").convert("RGB").save(copy)
    media.add(case_ws, AGENT, add_request(copy))
    after = {r[0]: r[1] for r in case_ws.conn.execute("SELECT id, person_id FROM case_faces")}
    assert all(after[f] == p for f, p in before.items())
    new = [f for f in after if f not in before]
    lin_id = case_ws.conn.execute("SELECT id FROM case_persons WHERE case_number = ? AND label = ?",
                                  (CASE, lin["label"])).fetchone()[0]
    assert [after[f] for f in new] == [lin_id]


def test_unknown_person_and_case_are_clear_errors(case_ws):
    with pytest.raises(NotFound):
        persons.show(case_ws, AGENT, CASE, "P999")
    with pytest.raises(InputError):
        persons.merge(case_ws, AGENT, CASE, ["P1", "P1"], "the same one twice")


def test_case_media_are_purged_once_every_search_of_the_case_is(case_ws):
    from datetime import datetime, timedelta, timezone

    lin = next(p for p in persons.listing(case_ws, AGENT, CASE)["persons"] if p["tracks"] == 2)
    searched = persons.search(case_ws, AGENT, CASE, lin["label"], person_search_request(top_k=2))
    assert media.purge_expired(case_ws, ADMIN)["purged_cases"] == []  # the search is open: media stay
    for c in searched["candidates"]:
        casework.disposition(case_ws, AGENT, searched["search_id"], c["rank"], "excluded", "not the same man")
    casework.close(case_ws, REVIEWER, searched["search_id"], "no-identification", "no lead survived review")
    long_ago = (datetime.now(timezone.utc) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    case_ws.conn.execute("UPDATE searches SET closed_at = ?", (long_ago,))
    stored = [r[0] for r in case_ws.conn.execute("SELECT stored_path FROM case_media WHERE kind = 'video'")]
    result = media.purge_expired(case_ws, ADMIN)
    assert result["purged_cases"] == [CASE] and result["media_files_removed"] > 0
    assert not (case_ws.home / stored[0]).exists()
    assert case_ws.conn.execute("SELECT count(*) FROM case_faces WHERE case_number = ?", (CASE,)).fetchone()[0] == 0
    assert case_ws.conn.execute("SELECT count(*) FROM case_media WHERE purged_at IS NULL").fetchone()[0] == 0
    # what any gallery still holds stays: Lin's gallery photo was also case media
    assert all((case_ws.home / r[0]).exists() for r in case_ws.conn.execute("SELECT stored_path FROM photos"))
    assert audit.entries(case_ws.conn, case=CASE)[-1]["action"] == "media.purge"


def test_grouping_is_conservative_on_look_alikes_and_handles_large_graphs():
    import numpy as np

    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.06, 128).astype(np.float32), rng.normal(0, 0.06, 128).astype(np.float32)
    # two people 0.45 apart (closer than dlib's 0.6 but over the grouping threshold), three photos each
    b = a + (b - a) / np.linalg.norm(b - a) * 0.45
    faces = np.stack([a, a + 0.01, a - 0.01, b, b + 0.01, b - 0.01]).astype(np.float32)
    labels = persons.cluster(faces)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    assert persons.cluster(np.zeros((0, 128), np.float32)) == []


def test_new_media_never_join_a_dropped_person(case_ws):
    from PIL import Image

    lin = next(p for p in persons.listing(case_ws, AGENT, CASE)["persons"] if p["tracks"] == 2)
    persons.drop(case_ws, AGENT, CASE, lin["label"], "set aside for this test")
    copy = case_ws.home / "lin-copy.png"
    Image.open(GALLERY_DIR / "lin_manuel_miranda" / "lin-manuel-miranda.png").convert("RGB").save(copy)
    report = media.add(case_ws, AGENT, add_request(copy))
    assert report["persons"]["new_persons"] == 1  # a person everyone sees, not a face hidden in a dropped one
    dropped = persons.show(case_ws, AGENT, CASE, lin["label"])
    assert len(dropped["appearances"]) == len(lin["appearances"])
