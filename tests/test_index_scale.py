"""The FAISS core: type selection, add/remove without rebuild, self-check, repair, concurrent readers, and
parallel enrollment giving the same embeddings. Small sizes; speed lives in benchmarks/."""

from __future__ import annotations

import multiprocessing
import time

import faiss
import numpy as np
import pytest

from leadmatch.gallery import galleries as galleries
from leadmatch.gallery import index
from leadmatch.gallery.enrollment import enroll
from leadmatch.record.store import embedding_to_blob, transaction
from leadmatch.search.run import run
from leadmatch.tools import bench

from .helpers import ACTOR, ANALYST, GALLERY, GALLERY_DIR, create_gallery, search_request


def test_index_type_follows_gallery_size():
    assert index.choose_factory(11) == "Flat"
    assert index.choose_factory(49_999) == "Flat"
    assert index.choose_factory(100_000) == "IVF1024,SQ8"
    assert index.choose_factory(1_000_000) == "IVF4096,SQ8"
    assert index.choose_factory(10_000_000) == "IVF4096,SQ8"


def test_ivf_adds_and_removes_without_retraining():
    faces, _, _ = bench.synthetic(4000)
    ids = np.arange(100, 4100, dtype=np.int64)
    built = index.build(ids[:3000], faces[:3000], "IVF32,SQ8")
    centroids = faiss.downcast_index(faiss.extract_index_ivf(built).quantizer).reconstruct_n(0, 32).copy()
    built.add_with_ids(faces[3000:], ids[3000:])
    built.remove_ids(faiss.IDSelectorArray(ids[:500]))
    assert sorted(index.stored_ids(built)) == list(ids[500:])
    after = faiss.downcast_index(faiss.extract_index_ivf(built).quantizer).reconstruct_n(0, 32)
    assert np.array_equal(centroids, after)  # same trained clusters: nothing was rebuilt
    found, _ = index.search(built, faces[3500], 5)
    assert found[0] == ids[3500]


def test_self_check_picks_the_smallest_nprobe_meeting_the_target():
    faces, _, _ = bench.synthetic(20_000)
    ids = np.arange(20_000, dtype=np.int64)
    built = index.build(ids, faces, "IVF128,SQ8")
    check = index.self_check(built, ids, faces)
    assert check["recall"] >= index.RECALL_TARGET and check["sample"] > 900
    ivf = faiss.extract_index_ivf(built)
    if check["nprobe"] > 1:  # one less than the chosen nprobe must miss the target: it is the smallest
        ivf.nprobe = check["nprobe"] - 1
        assert index.self_check_recall_at(built, ids, faces) < index.RECALL_TARGET
    exact = index.build(ids, faces, "Flat")
    assert index.self_check(exact, ids, faces)["recall"] == 1.0


def test_gallery_index_build_status_and_ivf_removal(ws):
    result = galleries.build_index(ws, ANALYST, GALLERY, "IVF2,Flat")
    assert result["factory"] == "IVF2,Flat" and result["self_check"]["recall"] >= index.RECALL_TARGET
    status = galleries.index_status(ws, ANALYST, GALLERY)
    assert (status["type"], status["chosen_by"], status["faces"], status["trained_on"]) == ("IVF2,Flat", "user", 11, 11)
    assert status["added_since_training"] == 0 and status["bytes_per_face"] > 128
    assert run(ws, ACTOR, search_request("obama1.jpg"))["candidates"][0]["subject"] == "barack_obama"
    galleries.remove_subject(ws, ANALYST, GALLERY, "barack_obama")  # removal in place, IVF keeps its ids
    assert galleries.index_status(ws, ANALYST, GALLERY)["faces"] == 9
    index.index_path(ws.indexes, galleries.get(ws, GALLERY).id).unlink()
    repaired = run(ws, ACTOR, search_request("alex_lacamoire1.jpg"))
    assert "rebuilt from the record (9 faces)" in repaired["details"]["index_repaired"]
    assert repaired["index"] == "IVF2,Flat"  # rebuilt as the type the gallery asked for
    assert repaired["candidates"][0]["subject"] == "alex_lacamoire"


def test_hnsw_removal_rebuilds_and_says_so(ws):
    galleries.build_index(ws, ANALYST, GALLERY, "HNSW8")
    galleries.remove_subject(ws, ANALYST, GALLERY, "joe_biden")
    status = galleries.index_status(ws, ANALYST, GALLERY)
    assert status["faces"] == 9 and status["type"] == "HNSW8"


def test_bad_factory_string_is_refused(ws):
    with pytest.raises(Exception, match="FAISS does not know"):
        galleries.build_index(ws, ANALYST, GALLERY, "NoSuchIndex42")


def _reader(path: str, seconds: float, queue) -> None:
    """Open and search the index over and over; report any read that failed or looked torn."""
    query = np.zeros(128, dtype=np.float32)
    bad, reads, sizes = 0, 0, set()
    stop = time.time() + seconds
    while time.time() < stop:
        loaded = index.read(__import__("pathlib").Path(path), mmap=True)
        if loaded is None:
            bad += 1
            continue
        index.search(loaded, query, 3)
        sizes.add(loaded.ntotal)
        reads += 1
    queue.put((bad, reads, sorted(sizes)))


def test_readers_never_see_a_torn_index_while_enrollment_writes(ws, tmp_path):
    gallery = galleries.get(ws, GALLERY)
    path = index.index_path(ws.indexes, gallery.id)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    reader = context.Process(target=_reader, args=(str(path), 6.0, queue))
    reader.start()
    rng = np.random.default_rng(0)
    subject = ws.conn.execute("SELECT id FROM subjects WHERE gallery_id = ? LIMIT 1", (gallery.id,)).fetchone()[0]
    photo = ws.conn.execute("SELECT id FROM photos WHERE subject_id = ?", (subject,)).fetchone()[0]
    writes = 0
    deadline = time.time() + 4.0
    while time.time() < deadline:  # each round commits to the record, then rewrites the index file
        with transaction(ws.conn):
            ws.conn.executemany(
                "INSERT INTO faces (gallery_id, subject_id, photo_id, box_top, box_right, box_bottom, box_left, "
                "size_px, eye_distance_px, sharpness, detector_score, embedding) VALUES (?, ?, ?, 0, 1, 1, 0, 100, 40, "
                "100, 1, ?)", [(gallery.id, subject, photo, embedding_to_blob(rng.normal(0, 0.1, 128)))
                                for _ in range(50)])
        index.sync(ws.conn, ws.indexes, gallery.id, "Flat")
        writes += 1
    enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1)  # a real enrollment pass as well
    reader.join(30)
    bad, reads, sizes = queue.get(timeout=10)
    assert bad == 0 and reads > 20 and writes > 5
    assert all((s - 11) % 50 == 0 for s in sizes)  # only whole states: 11 faces plus whole rounds of 50


def test_two_workers_give_the_same_embeddings_as_one(empty_ws, enrolled_template):
    create_gallery(empty_ws)
    report = enroll(empty_ws, ANALYST, GALLERY, GALLERY_DIR, workers=2)
    assert report.enrolled == 11
    from leadmatch.record.workspace import open_workspace

    reference = open_workspace(enrolled_template)
    query = ("SELECT p.sha256, f.embedding, f.box_top, f.box_left FROM faces f JOIN photos p ON p.id = f.photo_id "
             "ORDER BY p.sha256")
    assert empty_ws.conn.execute(query).fetchall() == reference.conn.execute(query).fetchall()
    reference.close()


def test_bench_measures_a_two_stage_fused_gallery_and_its_memory():
    row = bench.search_run(5000, "TwoStage:IVF16,SQ8", n_queries=100, slow_queries=2, model="dlib+faceres")
    assert row["model"] == "dlib+faceres" and row["first_stage_proposals"] == index.FIRST_STAGE_PROPOSALS
    assert row["mate_recall_vs_exact"] >= index.RECALL_TARGET and row["self_check_recall"] >= index.RECALL_TARGET
    # in RAM: the first stage's 8-bit dlib codes and ids, far under the fused vectors' 4.6 KB; those stay in the file
    assert 128 < row["bytes_per_face"] < 400 and row["stored_vector_bytes_per_face"] == 2312.0
