"""Finding faces fast without finding different faces: a probe's detection split into strips over two cores,
the first look sized to the photo, and coarse-to-fine detection of gallery photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from leadmatch.biometrics import faces, quality
from leadmatch.biometrics.photos import load

from .helpers import GALLERY_DIR

OBAMA = GALLERY_DIR / "barack_obama" / "obama.jpg"


@pytest.fixture(scope="module")
def head():
    """The sample photo's head and shoulders (its face about 240 px wide) and that face's width."""
    pixels = load(OBAMA).pixels
    [((top, right, bottom, left), _)] = faces.detect(pixels, 80)
    margin = right - left
    crop = pixels[max(0, top - margin):bottom + margin, max(0, left - margin):right + margin]
    return np.ascontiguousarray(crop), right - left


def scene(head, face_px: int, width: int, height: int, centre_x: int) -> np.ndarray:
    """A grey `width`×`height` photo with the head pasted so that its face is about `face_px` wide and centred
    at `centre_x`."""
    crop, crop_face = head
    factor = face_px / crop_face
    small = cv2.resize(crop, (round(crop.shape[1] * factor), round(crop.shape[0] * factor)),
                       interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    top, left = (height - small.shape[0]) // 2, centre_x - small.shape[1] // 2
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    return canvas


def widths(found) -> list[int]:
    return [box[1] - box[3] for box, _ in found]


def test_first_look_is_sized_to_the_photo():
    assert quality.probe_steps(640, 480) == (52, 40)
    assert quality.probe_steps(1920, 1080) == (64, 52, 40)
    assert quality.probe_steps(1080, 1920) == (64, 52, 40)
    assert quality.probe_steps(3840, 2160) == (128, 52, 40)


@pytest.mark.parametrize("face_px", [120, 280])
def test_a_face_on_the_strips_cut_is_found_once(head, face_px):
    """A face centred on the line between the two strips, narrow enough for the strips' overlap (120 px) or
    wider (280 px, found on the reduced copy), is found exactly once, as the one-pass detector finds it."""
    pixels = scene(head, face_px, 2400, 1200, centre_x=1200)
    assert pixels.shape[0] * pixels.shape[1] * faces.detection_scale(64) ** 2 >= faces.PARALLEL_MIN_PIXELS
    striped, whole = faces.detect_probe(pixels, 64), faces.detect(pixels, 64)
    assert len(striped) == len(whole) == 1
    assert abs(widths(striped)[0] - face_px) <= 0.3 * face_px
    assert abs(widths(striped)[0] - widths(whole)[0]) <= 0.3 * widths(whole)[0]


def test_a_face_wider_than_the_overlap_is_not_found_as_two_halves(head):
    pixels = scene(head, 600, 3000, 1700, centre_x=1500)
    found = faces.detect_probe(pixels, 64)
    assert len(found) == 1 and widths(found)[0] >= 450


def test_strips_give_the_same_faces_whatever_the_core_count(head):
    pixels = scene(head, 150, 2400, 1200, centre_x=900)
    one = faces.detect_probe(pixels, 64, threads=1)
    assert one and one == faces.detect_probe(pixels, 64, threads=2) == faces.detect_probe(pixels, 64, threads=3)


def test_striped_detection_embeds_the_sample_probes_as_one_pass_does():
    """On every large sample probe, strips find the faces one pass finds, and the chosen face's embedding moves
    far less than the match threshold."""
    for name in ("obama-1080p.jpg", "obama1.jpg", "obama3.jpg", "alex_lacamoire1.jpg", "two_people.jpg"):
        photo = load(GALLERY_DIR.parent / "probes" / name)
        first = quality.probe_steps(photo.width, photo.height)[0]
        whole = faces.analyze(photo, first)
        striped = faces.analyze(photo, first, probe=True)
        assert len(striped.faces) == len(whole.faces) >= 1, name
        for a, b in zip(striped.faces, whole.faces):
            assert np.linalg.norm(a.embedding - b.embedding) < 0.1, name


def test_a_small_face_in_a_large_photo_is_still_found(head):
    """The first look at a 1080p photo covers faces from 64 px; a lone 56 px face is found by the next step."""
    pixels = scene(head, 56, 1920, 1080, centre_x=700)
    data = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))[1].tobytes()
    found = quality.find_probe_faces(data, "cctv.png")
    assert len(found.faces) == 1 and found.faces[0].size_px < 64


def test_coarse_to_fine_tries_half_size_before_full_size():
    assert faces.coarse_factors(1920, 1080) == [3.6, 1.8, 1.0]
    assert faces.coarse_factors(360, 340) == [1.0]
    photo = load(GALLERY_DIR.parent / "probes" / "obama-1080p.jpg")
    coarse, full = faces.detect_gallery(photo.pixels, 80), faces.detect(photo.pixels, 80)
    assert len(coarse) == len(full) == 1
    assert abs(widths(coarse)[0] - widths(full)[0]) <= 0.25 * widths(full)[0]


def _strips_in_child(pixels, queue):
    queue.put(widths(faces.detect_probe(pixels, 64, threads=2)))


def test_a_forked_worker_can_search_strips_after_its_parent_did(head):
    """A process forked after a striped search (an enrollment or evaluation worker) gets its own threads rather
    than waiting forever on its parent's."""
    import multiprocessing

    pixels = scene(head, 150, 2400, 1200, centre_x=900)
    expected = widths(faces.detect_probe(pixels, 64, threads=2))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_strips_in_child, args=(pixels, queue))
    child.start()
    child.join(60)
    assert not child.is_alive(), "the forked worker hung"
    assert queue.get(timeout=5) == expected
