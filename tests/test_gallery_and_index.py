"""Galleries, enrollment and the FAISS index against a real SQLite record."""

from __future__ import annotations

import csv
import shutil

import faiss
import numpy as np
import pytest
from PIL import Image

from leadmatch.errors import InputError, NotFound, Refused
from leadmatch.gallery import galleries as galleries
from leadmatch.gallery import index
from leadmatch.gallery.enrollment import enroll
from leadmatch.record import audit
from leadmatch.search.run import run

from .helpers import ACTOR, ANALYST, GALLERY, GALLERY_DIR, PROBES_DIR, create_gallery, search_request


def search(ws, probe: str, **kw):
    return run(ws, ACTOR, search_request(probe, **kw))


def test_gallery_needs_every_authorization_field(empty_ws):
    with pytest.raises(Refused, match="--authority"):
        galleries.create(empty_ws, ANALYST, "g1", authority="  ", approved_by="X", approved_on="2026-01-01", source="s")
    with pytest.raises(InputError, match="not a date"):
        galleries.create(empty_ws, ANALYST, "g1", authority="A", approved_by="X", approved_on="01/02/2026", source="s")
    refused = [e for e in audit.entries(empty_ws.conn) if e["outcome"] == "refused"]
    assert [e["action"] for e in refused] == ["gallery.create", "gallery.create"]
    assert not empty_ws.conn.execute("SELECT count(*) FROM galleries").fetchone()[0]


def test_gallery_show_counts(ws):
    info = galleries.show(ws, ANALYST, GALLERY, with_refusals=True)
    assert info["refusals"] == []
    assert (info["subjects"], info["photos"], info["faces"], info["refused_photos"]) == (6, 11, 11, 0)
    assert info["authorization"]["approved_by"] == "Test Official"
    assert info["index"]["type"] == "Flat" and info["index"]["bytes"] > 11 * 128 * 4


def test_reenrolling_adds_nothing(ws):
    report = enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1)
    assert (report.enrolled, report.skipped, report.refused) == (0, 11, [])
    assert ws.conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 11


def test_enrollment_lists_every_refusal_with_its_reason(ws, tmp_path):
    source = tmp_path / "batch"
    (source / "pair").mkdir(parents=True)
    (source / "blank").mkdir()
    (source / "broken").mkdir()
    (source / "tiny").mkdir()
    shutil.copy(PROBES_DIR / "two_people.jpg", source / "pair" / "two.jpg")
    Image.new("RGB", (400, 300), (120, 120, 120)).save(source / "blank" / "wall.png")
    (source / "broken" / "half.jpg").write_bytes((GALLERY_DIR / "joe_biden" / "biden.jpg").read_bytes()[:5000])
    (source / "broken" / "readme.txt").write_text("not a photo")
    # a face of about 20 px: no usable face (a 57 px one is now enrolled, flagged low-quality)
    Image.open(PROBES_DIR / "obama-240p.jpg").resize((150, 84)).save(source / "tiny" / "small.jpg")
    (source / "loose.jpg").write_bytes((GALLERY_DIR / "joe_biden" / "biden.jpg").read_bytes())
    report = enroll(ws, ANALYST, GALLERY, source, workers=1)
    reasons = sorted((r.path.split("/batch/")[1], r.reason) for r in report.refused)
    assert reasons == [("blank/wall.png", "no-face"), ("broken/half.jpg", "unreadable"),
                       ("broken/readme.txt", "not-a-photo"), ("loose.jpg", "no-subject"),
                       ("pair/two.jpg", "multiple-faces"), ("tiny/small.jpg", "no-face")]
    assert report.enrolled == 0 and report.offered == 6
    info = galleries.describe(ws, galleries.get(ws, GALLERY))
    assert info["refused_photos"] == 6 and info["refused_by_reason"]["no-face"] == 2


def test_a_gallery_face_only_the_cnn_finds_is_enrolled_and_flagged_on_its_candidates(ws, tmp_path):
    """HOG finds no face in this lfw-dev photo at any gallery or probe size; the CNN's second look does, so the
    subject is not lost from every search, and every candidate the face yields says how it was found."""
    from leadmatch.biometrics import faces
    from leadmatch.biometrics.photos import load

    lfw = GALLERY_DIR.parent.parent / "lfw-dev" / "Colin_Montgomerie"
    photo = lfw / "Colin_Montgomerie_0004.jpg"
    assert faces.detect(load(photo).pixels, min_face_px=40, detector="hog") == []
    (tmp_path / "batch" / "colin_montgomerie").mkdir(parents=True)
    shutil.copy(photo, tmp_path / "batch" / "colin_montgomerie" / "c4.jpg")
    report = enroll(ws, ANALYST, GALLERY, tmp_path / "batch", workers=1)
    assert (report.enrolled, report.refused) == (1, [])
    found = run(ws, ACTOR, search_request(lfw / "Colin_Montgomerie_0001.jpg", top_k=3))
    top = found["candidates"][0]
    assert top["subject"] == "colin_montgomerie", [c["subject"] for c in found["candidates"]]
    assert "found by the CNN detector's second look (HOG found none)" in top["gallery_flags"]


def test_enroll_from_csv_manifest_keeps_metadata(empty_ws, tmp_path):
    create_gallery(empty_ws)
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "subject", "booking_number"])
        writer.writerow([str(GALLERY_DIR / "joe_biden" / "biden.jpg"), "joe_biden", "B-17"])
        writer.writerow([str(GALLERY_DIR / "rose_leslie" / "img1.jpg"), "rose_leslie", "B-18"])
    report = enroll(empty_ws, ANALYST, GALLERY, manifest, workers=1)
    assert report.enrolled == 2
    meta = empty_ws.conn.execute("SELECT metadata FROM photos p JOIN subjects s ON s.id = p.subject_id "
                                 "WHERE s.name = 'joe_biden'").fetchone()[0]
    assert '"booking_number": "B-17"' in meta


def test_manifest_without_subject_column_is_refused(empty_ws, tmp_path):
    create_gallery(empty_ws)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,name\nx.jpg,someone\n")
    with pytest.raises(InputError, match="subject column"):
        enroll(empty_ws, ANALYST, GALLERY, manifest)


def test_removing_a_subject_takes_them_out_of_results_at_once(ws):
    assert search(ws, "obama1.jpg")["candidates"][0]["subject"] == "barack_obama"
    removed = galleries.remove_subject(ws, ANALYST, GALLERY, "barack_obama")
    assert removed["faces_removed"] == 2
    after = search(ws, "obama1.jpg")
    assert "barack_obama" not in {c["subject"] for c in after["candidates"]}
    assert not any(c["within_threshold"] for c in after["candidates"])
    assert "index_repaired" not in after["details"]  # removal updated the index itself
    held = index.read(index.index_path(ws.indexes, galleries.get(ws, GALLERY).id))
    assert held.ntotal == 9
    with pytest.raises(NotFound):
        galleries.remove_subject(ws, ANALYST, GALLERY, "barack_obama")


def test_deleted_index_is_rebuilt_and_says_so(ws):
    path = index.index_path(ws.indexes, galleries.get(ws, GALLERY).id)
    before = search(ws, "obama-720p.jpg")
    path.unlink()
    after = search(ws, "obama-720p.jpg")
    assert "rebuilt from the record (11 faces)" in after["details"]["index_repaired"]
    assert path.exists()
    assert [c["face_id"] for c in after["candidates"]] == [c["face_id"] for c in before["candidates"]]


def test_corrupt_index_is_rebuilt(ws):
    path = index.index_path(ws.indexes, galleries.get(ws, GALLERY).id)
    path.write_bytes(b"garbage" * 100)
    result = search(ws, "obama-720p.jpg")
    assert "unreadable" in result["details"]["index_repaired"]
    assert result["candidates"][0]["subject"] == "barack_obama"


def test_stale_index_is_brought_in_step_with_the_record(ws):
    gallery = galleries.get(ws, GALLERY)
    path = index.index_path(ws.indexes, gallery.id)
    stale = index.read(path)
    stale.remove_ids(faiss.IDSelectorArray(np.array([1, 2], dtype=np.int64)))
    stale.add_with_ids(np.ones((1, 128), dtype=np.float32), np.array([999], dtype=np.int64))
    index.write_recorded(ws.conn, gallery.id, stale, path)  # one of leadmatch's own files, fallen behind the record
    result = search(ws, "obama-720p.jpg")
    assert result["details"]["index_repaired"].endswith("added 2, removed 1 faces")
    assert sorted(index.stored_ids(index.read(path))) == list(range(1, 12))


def test_unknown_gallery_and_empty_gallery(ws):
    with pytest.raises(NotFound, match="no gallery named 'nope'"):
        run(ws, ACTOR, search_request("obama1.jpg", gallery="nope"))
    create_gallery(ws, "empty-one")
    with pytest.raises(InputError, match="no enrolled faces"):
        run(ws, ACTOR, search_request("obama1.jpg", gallery="empty-one"))


def test_enrollment_writes_match_face_recognition_reference(ws):
    """Our pipeline embeds as face_recognition does (same models; detection scale may move the box slightly)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition
    row = ws.conn.execute("SELECT f.embedding, p.source_path FROM faces f JOIN photos p ON p.id = f.photo_id "
                          "ORDER BY f.id LIMIT 4").fetchall()
    for blob, path in row:
        ours = np.frombuffer(blob, dtype="<f4")
        reference = face_recognition.face_encodings(face_recognition.load_image_file(path))[0]
        assert np.linalg.norm(ours - reference) < 0.08, path


def test_gallery_stats_kept_by_triggers_equal_a_scan(ws, tmp_path):
    gallery = galleries.get(ws, GALLERY)

    def scanned():
        return tuple(ws.conn.execute("SELECT count(*), coalesce(sum(id), 0) FROM faces WHERE gallery_id = ?",
                                     (gallery.id,)).fetchone())

    assert index.record_fingerprint(ws.conn, gallery.id) == scanned() and scanned()[0] == 11
    galleries.remove_subject(ws, ANALYST, GALLERY, "rose_leslie")
    assert index.record_fingerprint(ws.conn, gallery.id) == scanned() and scanned()[0] == 9
    enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1)  # rose_leslie's photos come back under new ids
    assert index.record_fingerprint(ws.conn, gallery.id) == scanned() and scanned()[0] == 11


def test_a_first_enrollment_builds_the_index_without_a_repair_note_and_a_lost_index_is_named(empty_ws, tmp_path):
    """A gallery's first index is no repair; an index file gone later is rebuilt and said to be."""
    for person in ("barack_obama", "joe_biden"):
        shutil.copytree(GALLERY_DIR / person, tmp_path / person / person)
    create_gallery(empty_ws, "fresh")
    first = enroll(empty_ws, ANALYST, "fresh", tmp_path / "barack_obama", workers=1)
    assert first.enrolled == 2 and first.index_note is None
    gallery_id = empty_ws.conn.execute("SELECT id FROM galleries WHERE name = 'fresh'").fetchone()[0]
    index.index_path(empty_ws.indexes, gallery_id).unlink()
    again = enroll(empty_ws, ANALYST, "fresh", tmp_path / "joe_biden", workers=1)
    assert again.index_note and again.index_note.startswith("index file was missing; rebuilt from the record")
