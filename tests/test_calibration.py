"""The gallery-calibrated threshold, on small generated galleries in a real workspace (SQLite, FAISS).

Each generated person is a random point; their photos are that point plus same-person noise, as dlib
embeddings are. The calibration is checked against a brute-force computation, and its estimate against searches
for generated people who are not enrolled.
"""

from __future__ import annotations

import numpy as np
import pytest

from leadmatch.errors import InputError, Refused
from leadmatch.gallery import calibration, index
from leadmatch.gallery import galleries as galleries
from leadmatch.record import audit
from leadmatch.record.store import embedding_to_blob, transaction, utc_now
from leadmatch.record.workspace import init

from .helpers import ADMIN, ANALYST, add_people, create_gallery

SPREAD = 0.04      # per dimension between people: ≈ 0.65 apart, nearest other person ≈ 0.5–0.6, as in dlib galleries
NOISE = 0.015      # per dimension within a person: ≈ 0.25 apart


def people(rng, count: int) -> np.ndarray:
    return rng.normal(0, SPREAD, (count, 128)).astype(np.float32)


def photos_of(rng, centre: np.ndarray, count: int) -> np.ndarray:
    return (centre + rng.normal(0, NOISE, (count, 128))).astype(np.float32)


def add_subject(ws, gallery_id: int, name: str, embeddings: np.ndarray) -> None:
    """Record one subject with one photo per embedding; the first photo has the widest eye distance."""
    now = utc_now()
    with transaction(ws.conn):
        subject = ws.conn.execute("INSERT INTO subjects (gallery_id, name, created_at) VALUES (?, ?, ?)",
                                  (gallery_id, name, now)).lastrowid
        for number, vector in enumerate(embeddings):
            photo = ws.conn.execute(
                "INSERT INTO photos (gallery_id, subject_id, sha256, source_path, stored_path, enrolled_at, enrolled_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (gallery_id, subject, f"{name}-{number}", f"{name}/{number}.jpg",
                                                  "none", now, "test")).lastrowid
            ws.conn.execute(
                "INSERT INTO faces (gallery_id, subject_id, photo_id, box_top, box_right, box_bottom, box_left, size_px,"
                " eye_distance_px, sharpness, detector_score, embedding) VALUES (?, ?, ?, 0, 100, 100, 0, 100, ?, 80, 1, ?)",
                (gallery_id, subject, photo, 40.0 - number, embedding_to_blob(vector)))


@pytest.fixture
def generated(tmp_path):
    """A workspace whose gallery holds 300 generated people with 1–3 photos each; returns (ws, gallery, data)."""
    ws, _ = init(tmp_path / "home")
    add_people(ws)
    gallery = create_gallery(ws)
    rng = np.random.default_rng(7)
    centres = people(rng, 300)
    faces = {}
    for number, centre in enumerate(centres):
        faces[f"p{number:03d}"] = photos_of(rng, centre, 1 + number % 3)
        add_subject(ws, gallery.id, f"p{number:03d}", faces[f"p{number:03d}"])
    index.build_gallery(ws.conn, ws.indexes, gallery.id, "Flat")
    yield ws, gallery, faces
    ws.close()


def brute_force_nearest_other(faces: dict[str, np.ndarray]) -> np.ndarray:
    """Independently: each subject's first (best) photo against every photo of every other subject."""
    names = sorted(faces)
    out = []
    for name in names:
        others = np.concatenate([faces[n] for n in names if n != name])
        out.append(np.linalg.norm(others - faces[name][0], axis=1).min())
    return np.sort(np.array(out))


def test_build_stores_the_leave_one_out_impostor_distances(generated):
    ws, gallery, faces = generated
    stored = calibration.load(ws.conn, gallery.id)
    assert stored.subjects == stored.measured == 300
    np.testing.assert_allclose(stored.curve, brute_force_nearest_other(faces), atol=1e-4)


def test_threshold_leaves_the_target_share_of_impostors_below_it(generated):
    ws, gallery, faces = generated
    stored = calibration.load(ws.conn, gallery.id)
    curve = np.array(stored.curve)
    # 1 % of 300 measured subjects: at most 3 impostor distances lie strictly below the threshold, and the
    # threshold is itself the next one (so any higher threshold lets a 4th in).
    assert stored.target_fpir == 0.01 and stored.limited_by is None
    assert int((curve < stored.threshold).sum()) <= 3 < int((curve <= stored.threshold).sum())
    assert stored.fpir_at(stored.threshold) <= 0.01 < stored.fpir_at(stored.threshold + 1e-3)
    assert stored.fpir_at(0.0) == 0.0 and stored.describe_rate(0.0) == "under 0.33 %"
    assert stored.fpir_at(5.0) == 1.0
    assert stored.sentence() == f"threshold {stored.threshold:.2f} for 1 % false alarms in this gallery of 300 people"


def test_estimate_matches_searches_for_people_not_enrolled(generated):
    """The estimate is what `evaluate` checks on real photos: here on 2,000 generated absent people."""
    ws, gallery, _ = generated
    galleries.set_target_fpir(ws, ADMIN, gallery.name, 0.05)
    stored = calibration.load(ws.conn, gallery.id)
    assert stored.target_fpir == 0.05
    loaded = index.load(ws.conn, ws.indexes, gallery.id, "Flat")
    rng = np.random.default_rng(99)
    absent = np.stack([photos_of(rng, centre, 1)[0] for centre in people(rng, 2000)])
    squared, _ = loaded.index.search(absent, 1)
    rank1 = np.sqrt(squared[:, 0])
    measured = float((rank1 < stored.threshold).mean())
    assert 0.025 <= measured <= 0.10, measured  # within a factor of 2 of the 5 % target
    # and the per-distance estimate follows the measured curve at every distance in between
    for distance in np.quantile(rank1, [0.02, 0.1, 0.3, 0.5]):
        assert abs(stored.fpir_at(distance) - float((rank1 < distance).mean())) < 0.08


def test_one_person_under_two_subjects_is_counted_and_pulls_the_threshold_down(generated):
    ws, gallery, faces = generated
    before = calibration.load(ws.conn, gallery.id)
    rng = np.random.default_rng(3)
    for copy in range(6):  # six people enrolled twice, under a second name, from near-identical photos
        original = faces[f"p{copy:03d}"][0]
        add_subject(ws, gallery.id, f"dup{copy}", (original + rng.normal(0, 0.005, 128))[None].astype(np.float32))
    index.sync(ws.conn, ws.indexes, gallery.id, "Flat")  # an enrollment's sync recalibrates
    after = calibration.load(ws.conn, gallery.id)
    assert after.subjects == 306 and after.possible_duplicates >= 6
    assert after.threshold < before.threshold


def test_small_gallery_is_capped_at_the_one_to_one_threshold(tmp_path):
    ws, _ = init(tmp_path / "home")
    add_people(ws)
    gallery = create_gallery(ws)
    rng = np.random.default_rng(1)
    for number, centre in enumerate(people(rng, 5) * 1.6):  # five people, far apart
        add_subject(ws, gallery.id, f"s{number}", photos_of(rng, centre, 1))
    index.build_gallery(ws.conn, ws.indexes, gallery.id, "Flat")
    stored = calibration.load(ws.conn, gallery.id)
    assert stored.subjects == 5 and stored.threshold == calibration.MAX_THRESHOLD
    assert stored.limited_by == "max-threshold" and "capped at 0.6" in stored.sentence()
    ws.close()


def test_removing_a_subject_recalibrates(generated):
    ws, gallery, _ = generated
    galleries.remove_subject(ws, ANALYST, gallery.name, "p000")
    assert calibration.load(ws.conn, gallery.id).subjects == 299


def test_target_fpir_is_admin_only_range_checked_and_audited(generated):
    ws, gallery, _ = generated
    with pytest.raises(Refused):
        galleries.set_target_fpir(ws, ANALYST, gallery.name, 0.02)
    with pytest.raises(InputError):
        galleries.set_target_fpir(ws, ADMIN, gallery.name, 0.5)
    result = galleries.set_target_fpir(ws, ADMIN, gallery.name, 0.1)
    assert result["target_fpir"] == 0.1 and "for 10 % false alarms" in result["text"]
    rows = ws.conn.execute("SELECT actor, outcome FROM audit WHERE action = 'gallery.target-fpir' ORDER BY id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("ana", "refused"), ("admin", "refused"), ("admin", "ok")]
    assert audit.verify(ws.conn).ok


@pytest.mark.parametrize("rate, text", [(0.03, "3 %"), (0.005, "0.5 %"), (0.01, "1 %"), (0.125, "12 %"),
                                        (0.0012, "0.12 %"), (0.0004, "0.04 %")])
def test_rates_read_as_percentages(rate, text):
    assert calibration.percent(rate) == text
