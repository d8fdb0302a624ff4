"""The converted CNN face detector (MMOD on ONNX Runtime) against dlib's own: the same faces, boxes and
confidences on real sample photos and video frames; refused when its ONNX file is altered."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from leadmatch.biometrics import cnn_detector, faces
from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.photos import load
from leadmatch.errors import ModelError
from leadmatch.search.run import run

from .helpers import ACTOR, FACES, GALLERY_DIR, PROBES_DIR, assert_clean_error, flip_a_bit, run_cli, search_request


def _reduced(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """A copy whose longer side is at most `long_side` px (dlib's CNN takes seconds on a full-size photo)."""
    scale = long_side / max(pixels.shape[:2])
    if scale >= 1:
        return pixels
    size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def _video_frame(number: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(FACES / "video" / "short_hamilton_clip.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, number)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _by_dlib(pixels: np.ndarray) -> list:
    return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
            for d in models.cnn_detector()(pixels, 0)]


@pytest.fixture(scope="module")
def sample_images() -> dict[str, np.ndarray]:
    """Small real images: a probe, two people, a gallery photo, a crowded video frame and a grey one."""
    return {
        "obama_small.jpg": load(PROBES_DIR / "obama_small.jpg").pixels,
        "two_people.jpg": _reduced(load(PROBES_DIR / "two_people.jpg").pixels, 480),
        "biden2.jpg": _reduced(load(sorted(GALLERY_DIR.glob("*/biden2.jpg"))[0]).pixels, 400),
        "video frame 240": _video_frame(240),
        "grey": np.full((120, 160, 3), 128, np.uint8),
    }


def test_onnx_detector_finds_what_dlibs_cnn_finds(sample_images):
    found = 0
    for name, pixels in sample_images.items():
        by_dlib, by_onnx = _by_dlib(pixels), cnn_detector.detect(pixels)
        assert len(by_onnx) == len(by_dlib), name
        for (box_dlib, conf_dlib), (box_onnx, conf_onnx) in zip(by_dlib, by_onnx):
            assert max(abs(a - b) for a, b in zip(box_dlib, box_onnx)) <= 1, (name, box_dlib, box_onnx)
            assert abs(conf_dlib - conf_onnx) <= 1e-3, (name, conf_dlib, conf_onnx)
        found += len(by_dlib)
    assert found >= 6  # one, two, one and several faces in the frame: the comparison is not vacuous


def test_faces_detect_cnn_is_the_same_with_either_engine(sample_images):
    """`--detector cnn` through leadmatch's own detect (scaled copy, boxes in photo pixels): ONNX and dlib agree."""
    pixels = sample_images["video frame 240"]
    by_onnx = faces.detect(pixels, min_face_px=80, detector="cnn")
    try:
        faces.use_engine("dlib")
        by_dlib = faces.detect(pixels, min_face_px=80, detector="cnn")
    finally:
        faces.use_engine(None)
    assert len(by_onnx) == len(by_dlib) >= 1
    for (box_onnx, conf_onnx), (box_dlib, conf_dlib) in zip(by_onnx, by_dlib):
        assert max(abs(a - b) for a, b in zip(box_onnx, box_dlib)) <= 2  # 1 px at 80/52 scale, then rounded
        assert abs(conf_onnx - conf_dlib) <= 1e-3


def test_images_too_small_for_the_network_have_no_faces():
    for rows, cols in ((1, 1), (6, 6), (3, 400)):
        assert cnn_detector.detect(np.zeros((rows, cols, 3), np.uint8)) == []


def test_pyramid_layout_matches_dlibs_tiling():
    """The first level sits at the outer padding, each next one 5/6 the size; none overlaps another."""
    spec = cnn_detector.settings()
    rects, rows, cols = cnn_detector.pyramid_layout(240, 320, spec)
    assert rects[0] == (11, 11, 330, 250) and cols == 320 + 22
    for (l1, t1, r1, b1), (l2, t2, r2, b2) in zip(rects, rects[1:]):
        assert r2 - l2 + 1 == int(5 / 6 * (r1 - l1 + 1))
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] < cols and 0 <= a[1] and a[3] < rows
        for b in rects[i + 1:]:
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def test_search_with_the_cnn_detector_finds_the_subject(ws):
    result = run(ws, ACTOR, search_request("obama_small.jpg", detector="cnn"))
    assert result["candidates"][0]["subject"] == "barack_obama"


def test_missing_detector_model_is_converted_with_the_cards_hash(own_models):
    path = models.mmod_onnx_path()
    assert path.parent == own_models
    assert models.sha256_file(path) == models.expected_converted()[models.MMOD_ONNX]["sha256"]


def test_altered_detector_model_is_refused(own_models):
    path = models.mmod_onnx_path()  # a good copy first
    models.mmod_onnx_path.cache_clear()
    flip_a_bit(path)
    with pytest.raises(ModelError, match="does not match the model card"):
        faces.detect(np.zeros((200, 200, 3), np.uint8), detector="cnn")
    result = run_cli("models", "--no-check", env={"LEADMATCH_MODELS_DIR": str(own_models)})
    assert_clean_error(result, models.MMOD_ONNX, "does not match the model card", code=5)
