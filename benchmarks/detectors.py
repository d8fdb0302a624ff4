"""Benchmark: face detectors — dlib's HOG (leadmatch's default; full size and coarse-to-fine as enrollment runs
it) against dlib's CNN (MMOD, mmod_human_face_detector.dat) converted to ONNX and run by ONNX Runtime, on the
sample photos and on frames of the sample video: faces found and milliseconds an image; dlib's own CNN on a few
frames for comparison; and what the CNN would cost enrollment (the whole per-photo work on the sample photos and
on generated 480×600 mugshots, as photos a second on 2 cores).

    python benchmarks/detectors.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cv2
from common import FACES, RESULTS, load_note, save
from enroll import mugshots

from leadmatch.biometrics import faces, quality
from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, load, read_bytes

FRAME_STEP = 15  # every 15th frame: about two a second of the 30 fps clip
DLIB_FRAME_STEP = 60  # dlib's own CNN takes about a second a frame: every 60th only
CORES = 2  # the enrollment target is stated for 2 cores


def sample_photos() -> list:
    """(name, pixels) of every readable sample photo, gallery and probes."""
    photos = []
    for path in sample_paths():
        try:
            photos.append((path.name, load(path).pixels))
        except Exception:  # noqa: BLE001 - the samples hold photos meant to be refused
            continue
    return photos


def sample_paths() -> list[Path]:
    return sorted(p for p in FACES.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)


def video_frames(step: int = FRAME_STEP) -> list:
    """(name, RGB pixels) of every `step`-th frame of the sample video."""
    capture = cv2.VideoCapture(str(FACES / "video" / "short_hamilton_clip.mp4"))
    frames, number = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if number % step == 0:
            frames.append((f"frame {number}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        number += 1
    return frames


def run(images: list, find) -> tuple[int, float, int, list[int]]:
    """Faces found in all images, ms an image, images with at least one face, faces found in each image."""
    started, counts = time.perf_counter(), []
    for _, pixels in images:
        counts.append(len(find(pixels)))
    ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
    return sum(counts), ms, sum(c > 0 for c in counts), counts


def with_engine(engine: str, find):
    """`find` run with the given engine (`dlib`: dlib's own CNN; `onnx`: the converted one)."""
    def wrapped(pixels):
        faces.use_engine(engine)
        try:
            return find(pixels)
        finally:
            faces.use_engine(None)
    return wrapped


def per_photo_ms(jobs: list[tuple[bytes, str]], detector: str, min_face_px: int, coarse: bool) -> tuple[float, int]:
    """Enrollment's whole per-photo work (decode, detect, landmarks, chip, embedding; `faces.analyze_many`),
    one photo at a time in this process: ms a photo and faces found."""
    started, found = time.perf_counter(), 0
    for data, name in jobs:
        result = faces.analyze_many([(data, name)], min_face_px=min_face_px, detector=detector, coarse=coarse)[0]
        found += len(getattr(result, "faces", []))
    return (time.perf_counter() - started) * 1000 / max(1, len(jobs)), found


def cli_photos_per_s() -> float | None:
    """The face_recognition CLI's photos/s on the sample photos from the last enrollment benchmark, if any."""
    try:
        rows = json.loads((RESULTS / "enroll.json").read_text())["rows"]
        return float(next(r["photos_per_s"] for r in rows if r["tool"].startswith("face_recognition CLI (default")))
    except (OSError, ValueError, KeyError, StopIteration):
        return None


def main() -> None:
    models.hog_detector(), models.cnn_detector(), models.mmod_onnx_path(), models.onnx_path()
    photos, frames = sample_photos(), video_frames()
    faces.detect(photos[0][1], 80, "cnn")  # ONNX Runtime session started outside the timings
    photo_set, frame_set = f"sample photos (gallery + probes): {len(photos)}", f"video frames (every {FRAME_STEP}th): {len(frames)}"
    hog52 = ("HOG, faces from 52 px (probe search)", lambda p: faces.detect(p, quality.PROBE_DETECT_MIN_PX, "hog"))
    cnn52 = ("CNN (MMOD) on ONNX Runtime, faces from 52 px (probe search)", lambda p: faces.detect(p, 52, "cnn"))
    plans = [
        (photo_set, photos, [
            hog52,
            ("HOG, faces from 80 px (gallery, full size)", lambda p: faces.detect(p, 80, "hog")),
            ("HOG, from 80 px, coarse-to-fine (enrollment)", lambda p: faces.detect_gallery(p, 80, "hog")),
            cnn52,
            ("CNN (MMOD) on ONNX Runtime, faces from 80 px (photo at its own size)", lambda p: faces.detect(p, 80, "cnn")),
        ]),
        (frame_set, frames, [
            hog52,
            ("HOG, faces from 36 px", lambda p: faces.detect(p, 36, "hog")),
            cnn52,
            ("CNN (MMOD) on ONNX Runtime, faces from 36 px", lambda p: faces.detect(p, 36, "cnn")),
        ]),
    ]
    dlib_frames = [f for f in frames if int(f[0].split()[1]) % DLIB_FRAME_STEP == 0]
    plans.append((f"video frames (every {DLIB_FRAME_STEP}th): {len(dlib_frames)}", dlib_frames, [
        ("CNN (MMOD) in dlib, frame at its own size", with_engine("dlib", lambda p: faces.detect(p, 80, "cnn"))),
        ("CNN (MMOD) on ONNX Runtime, frame at its own size", lambda p: faces.detect(p, 80, "cnn")),
    ]))
    rows, counts = [], {}
    for set_name, images, finders in plans:
        for detector, find in finders:
            total, ms, with_face, per_image = run(images, find)
            counts[(set_name, detector)] = per_image
            rows.append({"images": set_name, "detector": detector, "faces_found": total,
                         "images_with_a_face": with_face, "ms_per_image": round(ms, 1)})
    hog_frames, cnn_frames = counts[(frame_set, hog52[0])], counts[(frame_set, cnn52[0])]
    cnn_only = sum(1 for h, c in zip(hog_frames, cnn_frames) if c and not h)
    dlib_ms, onnx_ms = rows[-2]["ms_per_image"], rows[-1]["ms_per_image"]

    # Enrollment: the per-photo work with each detector, as a worker does it
    with tempfile.TemporaryDirectory() as temp:
        mugshots(Path(temp))
        mugshot_jobs = [(read_bytes(p), p.name) for p in sorted(Path(temp).rglob("*.jpg"))]
    sample_jobs = [(read_bytes(p), p.name) for p in sample_paths()]
    enroll_rows = []
    for set_name, jobs in ((f"sample photos: {len(sample_jobs)}", sample_jobs),
                           (f"mugshots 480×600: {len(mugshot_jobs)}", mugshot_jobs)):
        for label, detector, min_face_px, coarse in (
                ("HOG, from 80 px, coarse-to-fine (the default)", "hog", 80, True),
                ("CNN on ONNX Runtime, faces from 80 px (80 px window: photo at its own size)", "cnn", 80, False),
                ("CNN on ONNX Runtime, faces from 160 px (half-size copy)", "cnn", 160, False)):
            ms, found = per_photo_ms(jobs, detector, min_face_px, coarse)
            enroll_rows.append({"images": f"enrollment work, {set_name}", "detector": label, "faces_found": found,
                                "ms_per_image": round(ms, 1), f"photos_per_s_on_{CORES}_cores": round(CORES * 1000 / ms, 1)})
    cli = cli_photos_per_s()
    rows += enroll_rows
    save("detectors", "Face detectors: dlib HOG vs dlib's CNN (MMOD) converted to ONNX, on the sample photos and "
         "video frames; the CNN's cost at enrollment", rows, notes=[
        "the sample photos hold 30 faces the face_recognition CLI finds; the video's faces are 18–111 px wide "
        "(see shared/data/faces/video/README.md)",
        f"video: the CNN finds a face in {cnn_only} of {len(frames)} frames where HOG (from 52 px) finds none "
        "(profiles, turned and small background faces)",
        "CNN on ONNX Runtime: the same network and weights as dlib's cnn_face_detection_model_v1 (same boxes, "
        "confidences within 1e-5; tests/test_cnn_detector.py), one ORT thread; the tiled image pyramid and the "
        f"decoding in numpy. On the same frames dlib's own CNN takes {dlib_ms:.0f} ms a frame, ONNX Runtime "
        f"{onnx_ms:.0f} ms ({dlib_ms / max(onnx_ms, 1e-9):.0f}×)",
        "faces from N px: the image is scaled by 80/N first (both detectors' windows are 80 px), so smaller faces "
        "cost the square of that in pixels",
        f"enrollment rows: decode, detect, landmarks, chip and ONNX embedding of one photo at a time in one process; "
        f"photos_per_s_on_{CORES}_cores = {CORES} × 1000 / ms, the best two single-threaded workers could do "
        "(no database writes)",
        "enrollment targets: ≥ 80 mugshots/s on 2 cores; ≥ 10× the face_recognition CLI's photos/s on the sample "
        "photos" + (f" (the CLI: {cli:.2f} photos/s in benchmarks/results/enroll.md, so ≥ {10 * cli:.1f})" if cli else ""),
        f"measured on a shared {os.cpu_count()}-core machine; " + load_note(),
    ])


if __name__ == "__main__":
    main()
