"""The converted ONNX ResNet against dlib's own: same numbers on real sample faces, refused when altered, and
embeddings stored by dlib still match what the default (ONNX) engine computes now."""

from __future__ import annotations

import numpy as np
import pytest

from leadmatch.biometrics import faces, quality
from leadmatch.biometrics.models import agreement
from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.photos import read_bytes
from leadmatch.errors import ModelError
from leadmatch.gallery.enrollment import enroll
from leadmatch.record.store import blob_to_embedding
from leadmatch.record.workspace import init, open_workspace
from leadmatch.search.run import run

from .helpers import (
    ACTOR,
    ANALYST,
    FACES,
    GALLERY,
    GALLERY_DIR,
    PROBES_DIR,
    add_people,
    assert_clean_error,
    create_gallery,
    flip_a_bit,
    run_cli,
    search_request,
)


@pytest.fixture(scope="module")
def sample_chips():
    """Aligned chips of every face in the sample photos (gallery and probes)."""
    chips = agreement.reference_chips(FACES, limit=200)
    assert len(chips) >= 25
    return chips


def test_onnx_embeddings_equal_dlibs_on_every_sample_face(sample_chips):
    by_dlib = faces.embed_chips(sample_chips, "dlib")
    by_onnx = faces.embed_chips(sample_chips, "onnx")
    assert by_onnx.shape == by_dlib.shape == (len(sample_chips), 128)
    assert np.abs(by_onnx - by_dlib).max() <= agreement.TOLERANCE
    assert (agreement.rankings(by_onnx) == agreement.rankings(by_dlib)).all()


def test_batching_does_not_change_embeddings(sample_chips):
    one_by_one = np.vstack([faces.embed_chips([chip], "onnx") for chip in sample_chips[:8]])
    batched = faces.embed_chips(sample_chips[:8], "onnx")
    assert np.abs(one_by_one - batched).max() <= 1e-6


def test_probe_analysis_is_the_same_with_either_engine():
    data = read_bytes(PROBES_DIR / "obama_and_biden.jpg")
    try:
        faces.use_engine("dlib")
        by_dlib = faces.analyze_bytes(data)
    finally:
        faces.use_engine(None)
    by_onnx = faces.analyze_bytes(data)
    assert [f.box for f in by_onnx.faces] == [f.box for f in by_dlib.faces] and len(by_dlib.faces) >= 2
    for a, b in zip(by_onnx.faces, by_dlib.faces):
        assert np.abs(a.embedding - b.embedding).max() <= agreement.TOLERANCE


def test_missing_onnx_model_is_converted_with_the_cards_hash(own_models):
    path = models.onnx_path()
    assert path.parent == own_models
    assert models.sha256_file(path) == models.expected_converted()[models.RESNET_ONNX]["sha256"]


def test_altered_onnx_model_is_refused(own_models, empty_ws):
    path = models.onnx_path()  # a good copy first
    models.onnx_path.cache_clear()
    flip_a_bit(path)
    with pytest.raises(ModelError, match="does not match the model card"):
        models.onnx_path()
    # enrollment stops before touching the record
    create_gallery(empty_ws)
    with pytest.raises(ModelError):
        enroll(empty_ws, ANALYST, GALLERY, GALLERY_DIR, workers=1)
    assert empty_ws.conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0
    # and on the command line: exit 5, one line naming the file
    result = run_cli("models", "--no-check", env={"LEADMATCH_MODELS_DIR": str(own_models)})
    assert_clean_error(result, models.RESNET_ONNX, "does not match the model card", code=5)


def test_cli_models_shows_both_hashes_and_the_agreement():
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    card = models.expected_converted()[models.RESNET_ONNX]
    assert card["sha256"] in result.stdout and models.expected_hashes()[card["from"]] in result.stdout
    assert "agreement" in result.stdout and "rankings identical" in result.stdout
    # the CNN face detector too: its converted file's hash and its agreement with dlib's own CNN
    assert models.expected_converted()[models.MMOD_ONNX]["sha256"] in result.stdout
    assert "ok  detector agreement" in result.stdout and "same faces found" in result.stdout


def test_unknown_engine_is_refused():
    assert_clean_error(run_cli("--engine", "tensorflow", "models", "--no-check"), "unknown descriptor engine")


def test_workspace_enrolled_with_dlib_still_matches_onnx(tmp_path, monkeypatch):
    """A gallery enrolled as every workspace was before ONNX (dlib's descriptor, full-size detection) keeps
    working unchanged: its stored embeddings equal what the ONNX engine computes from the same photos now."""
    ws, _ = init(tmp_path / "old")
    add_people(ws)
    create_gallery(ws)
    with monkeypatch.context() as old_code:
        old_code.setattr(faces, "COARSE_SHORT_SIDE_PX", 10 ** 9)  # no coarse pass: full-size detection, as before
        try:
            faces.use_engine("dlib")
            assert enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1).enrolled == 11
        finally:
            faces.use_engine(None)
    ws.close()
    ws = open_workspace(tmp_path / "old")
    try:
        rows = ws.conn.execute("SELECT p.stored_path, f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id")
        for stored_path, blob in rows.fetchall():
            now = faces.analyze_bytes(read_bytes(ws.home / stored_path), min_face_px=quality.GALLERY_DETECT_MIN_PX).faces
            assert len(now) == 1
            assert np.abs(now[0].embedding - blob_to_embedding(blob)).max() <= agreement.TOLERANCE
        top = run(ws, ACTOR, search_request("obama1.jpg"))["candidates"][0]
        assert top["subject"] == "barack_obama" and top["within_threshold"]
    finally:
        ws.close()


def test_coarse_to_fine_gallery_detection_moves_embeddings_little(tmp_path):
    """Enrollment detects coarse-to-fine; the faces it finds are the full-size detector's, and their embeddings
    move by far less than the 0.6 threshold (the README gives the measured figures)."""
    for photo in sorted(GALLERY_DIR.glob("*/*")):
        data = read_bytes(photo)
        full = faces.analyze_many([(data, photo.name)], min_face_px=quality.GALLERY_DETECT_MIN_PX)[0]
        coarse = faces.analyze_many([(data, photo.name)], min_face_px=quality.GALLERY_DETECT_MIN_PX, coarse=True)[0]
        assert len(coarse.faces) == len(full.faces) == 1, photo
        assert np.linalg.norm(coarse.faces[0].embedding - full.faces[0].embedding) < 0.1, photo
        assert abs(coarse.faces[0].size_px - full.faces[0].size_px) <= 0.25 * full.faces[0].size_px
