"""The sample photos: every enrolled face in every probe finds its true subject at rank 1, within threshold."""

from __future__ import annotations

import pytest

from leadmatch import leads
from leadmatch.search import run

from .conftest import ACTOR, PROBES_DIR, probe_rows, search_request


@pytest.fixture(scope="module")
def all_searches(enrolled_template, tmp_path_factory):
    """Every face of every probe searched once (module-wide: detection is the slow part)."""
    import shutil

    from leadmatch.workspace import open_workspace

    home = tmp_path_factory.mktemp("acc") / "home"
    shutil.copytree(enrolled_template, home)
    ws = open_workspace(home)
    results = {}
    for row in probe_rows():
        for position, identity in enumerate(row["identities"], start=1):
            request = search_request(PROBES_DIR.parent / row["file"], case="ACC-1",
                                     face=position if row["faces"] > 1 else None)
            results[(row["file"], position)] = (identity, run(ws, ACTOR, request))
    ws.close()
    return results


def test_every_probe_face_is_found_with_the_listed_face_count(all_searches):
    for (name, position), (_, result) in all_searches.items():
        row = next(r for r in probe_rows() if r["file"] == name)
        assert result["probe"]["faces_in_photo"] == row["faces"], name


def test_true_subject_is_rank_one_within_threshold(all_searches):
    checked = 0
    for (name, position), (identity, result) in all_searches.items():
        if identity == "unknown":
            continue
        top = result["candidates"][0]
        assert top["subject"] == identity, (name, position, top)
        assert top["within_threshold"] and top["distance"] < leads.DEFAULT_THRESHOLD, (name, top)
        checked += 1
    expected = sum(1 for row in probe_rows() for identity in row["identities"] if identity != "unknown")
    assert checked == expected == 18  # 12 single-face probes + 2 + 2 + 2 faces in the group photos


def test_unenrolled_face_has_no_candidate_within_threshold(all_searches):
    identity, result = all_searches[("probes/obama_and_biden.jpg", 3)]
    assert identity == "unknown"
    assert result["candidates"], "candidates are still listed"
    assert not any(c["within_threshold"] for c in result["candidates"])
    assert result["candidates"][0]["distance"] > leads.DEFAULT_THRESHOLD


def test_every_candidate_carries_the_lead_only_label(all_searches):
    for _, result in all_searches.values():
        assert result["notice"] == leads.NOTICE
        # Top 20 asked; 6 people (11 photos) enrolled: each person once, ranked by their closest photo.
        assert len(result["candidates"]) == 6
        assert len({c["subject"] for c in result["candidates"]}) == 6
        assert [c["rank"] for c in result["candidates"]] == list(range(1, 7))
        distances = [c["distance"] for c in result["candidates"]]
        assert distances == sorted(distances)
        assert sum(len(c["faces"]) for c in result["candidates"]) == 11
        for c in result["candidates"]:
            assert c["faces"][0]["face_id"] == c["face_id"] and c["faces"][0]["distance"] == c["distance"]
            assert c["also_matched"] == len(c["faces"]) - 1
        for c in result["candidates"]:
            assert c["lead_only"] is True
            assert c["label"] == "INVESTIGATIVE LEAD ONLY — NOT A POSITIVE IDENTIFICATION"
