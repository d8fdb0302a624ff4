"""Index files against the record: a file whose bytes are not the ones leadmatch wrote — same face ids, other
vectors — is found on open by its content hash, rebuilt from the record, and the search and `index status` say so."""

from __future__ import annotations

import os
import time

import faiss
import numpy as np
import pytest

from leadmatch.gallery import galleries as galleries
from leadmatch.gallery import index
from leadmatch.record.store import gallery_embeddings
from leadmatch.search.run import run

from .helpers import ACTOR, ANALYST, GALLERY, PROBES_DIR, login, run_cli, search_request

CHANGED = "index file's sha256 differs from the recorded one (altered, or its write was cut short)"


def obama_face_ids(ws) -> list[int]:
    return [r[0] for r in ws.conn.execute(
        "SELECT f.id FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE s.name = 'barack_obama'")]


def swapped_index(ws) -> bytes:
    """An index file with the record's face ids but barack_obama's vectors moved far away: it passes a check
    by face count and id sum, and hides him from every search."""
    gallery_id = galleries.get(ws, GALLERY).id
    ids, vectors = gallery_embeddings(ws.conn, gallery_id)
    moved = np.isin(ids, obama_face_ids(ws))
    vectors = vectors.copy()
    vectors[moved] += 3.0
    swapped = faiss.IndexIDMap(faiss.IndexFlatL2(128))
    swapped.add_with_ids(vectors, ids)
    return faiss.serialize_index(swapped).tobytes()


def replace_file(path, data: bytes) -> None:
    """Swap the file as a careful attacker would: a whole new file renamed into place."""
    temp = path.with_name("swap.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def subjects(result: dict) -> list[str]:
    return [c["subject"] for c in result["candidates"]]


def test_swapped_index_vectors_are_rebuilt(ws, home):
    gallery_id = galleries.get(ws, GALLERY).id
    path = index.index_path(ws.indexes, gallery_id)
    before = run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))
    assert subjects(before)[0] == "barack_obama" and "index_repaired" not in before["details"]

    data = swapped_index(ws)
    replace_file(path, data)
    attacker = index.read(path)
    assert index.index_fingerprint(attacker) == index.record_fingerprint(ws.conn, gallery_id)  # count and id sum agree
    obama_vector = gallery_embeddings(ws.conn, gallery_id)[1][np.isin(
        gallery_embeddings(ws.conn, gallery_id)[0], obama_face_ids(ws))][0]
    found, _ = index.search(attacker, obama_vector, 5)
    assert not set(found) & set(obama_face_ids(ws))  # the attack works on the file itself: he is hidden

    # in this process (the index was kept open from the search before): detected, rebuilt, said
    after = run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))
    assert after["details"]["index_repaired"] == f"{CHANGED}; rebuilt from the record (11 faces)"
    assert subjects(after)[0] == "barack_obama"
    assert [c["face_id"] for c in after["candidates"]] == [c["face_id"] for c in before["candidates"]]
    assert index.file_sha256(path) == index.recorded_file(ws.conn, gallery_id)["sha256"]

    # a fresh CLI process: the search output says so, and finds him
    replace_file(path, data)
    login(home, ACTOR)
    searched = run_cli("search", str(PROBES_DIR / "obama-720p.jpg"), "--gallery", GALLERY, "--case", "T-9",
                       "--purpose", "robbery", "--justification", "Suspect seen on the store camera.",
                       "--traditional-means", "Canvass, witness interviews and pawn records gave no name at all.",
                       "--top-k", "3", home=home)
    assert searched.returncode == 0, searched.stderr
    assert f"note: {CHANGED}; rebuilt from the record (11 faces)" in searched.stdout
    first_row = next(line for line in searched.stdout.splitlines() if line.startswith("│ 1 "))
    assert "barack_obama" in first_row

    # `index status` reports it too (to whoever keeps the gallery: an analyst)
    replace_file(path, data)
    login(home, ANALYST)
    status = run_cli("index", "status", GALLERY, home=home)
    assert status.returncode == 0 and f"repaired: {CHANGED}" in status.stdout
    assert galleries.index_status(ws, ANALYST, GALLERY)["repaired"] is None  # and the file is whole again


def test_index_rewritten_in_place_with_its_old_times_is_detected(ws):
    """Same inode, same size, mtime put back: the change time (which no user can set) still gives it away."""
    gallery_id = galleries.get(ws, GALLERY).id
    path = index.index_path(ws.indexes, gallery_id)
    run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))  # opened and kept by this process
    data = swapped_index(ws)
    assert len(data) == path.stat().st_size
    before = path.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    result = run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))
    assert result["details"]["index_repaired"].startswith(CHANGED)
    assert subjects(result)[0] == "barack_obama"


def test_enrollment_never_patches_a_swapped_index(ws):
    """Adding or removing faces updates the index in place, but not one whose bytes are not leadmatch's."""
    path = index.index_path(ws.indexes, galleries.get(ws, GALLERY).id)
    replace_file(path, swapped_index(ws))
    galleries.remove_subject(ws, ANALYST, GALLERY, "joe_biden")  # syncs the index: must rebuild it instead
    result = run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))
    assert "index_repaired" not in result["details"] and subjects(result)[0] == "barack_obama"
    assert "joe_biden" not in subjects(result)


def test_copied_workspace_is_checked_once_by_hash_then_by_identity(ws):
    """The test workspace is a copy, so its index file has a new identity: the first open hashes it, finds the
    bytes recorded, keeps the new identity; nothing is rebuilt."""
    gallery_id = galleries.get(ws, GALLERY).id
    path = index.index_path(ws.indexes, gallery_id)
    assert index.recorded_file(ws.conn, gallery_id)["identity"] != index.file_identity(path)
    built_at = index.build_info(ws.conn, gallery_id)["built_at"]
    result = run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))
    assert "index_repaired" not in result["details"]
    assert index.recorded_file(ws.conn, gallery_id)["identity"] == index.file_identity(path)
    assert index.build_info(ws.conn, gallery_id)["built_at"] == built_at


def test_index_without_a_recorded_hash_is_rebuilt(ws):
    """An index written before content hashes were recorded is not trusted: rebuilt once, and said."""
    gallery_id = galleries.get(ws, GALLERY).id
    ws.conn.execute("DELETE FROM index_files WHERE gallery_id = ?", (gallery_id,))
    result = run(ws, ACTOR, search_request("obama-720p.jpg", top_k=3))
    assert result["details"]["index_repaired"] == ("index file has no recorded content hash (written by an older "
                                                   "leadmatch); rebuilt from the record (11 faces)")
    assert index.recorded_file(ws.conn, gallery_id) is not None
    assert "index_repaired" not in run(ws, ACTOR, search_request("obama1.jpg", top_k=3))["details"]


@pytest.mark.parametrize("factory", ["IVF2,Flat", "HNSW8"])
def test_every_write_records_the_hash_of_the_bytes_written(ws, factory):
    gallery_id = galleries.get(ws, GALLERY).id
    path = index.index_path(ws.indexes, gallery_id)
    galleries.build_index(ws, ANALYST, GALLERY, factory)
    assert index.file_sha256(path) == index.recorded_file(ws.conn, gallery_id)["sha256"]
    galleries.remove_subject(ws, ANALYST, GALLERY, "joe_biden")  # in place (IVF) or rebuilt (HNSW)
    recorded = index.recorded_file(ws.conn, gallery_id)
    assert index.file_sha256(path) == recorded["sha256"] and recorded["identity"] == index.file_identity(path)
    assert recorded["bytes"] == path.stat().st_size
