"""Benchmark: face detectors — dlib's HOG (leadmatch's default; full size and coarse-to-fine as enrollment runs
it) against dlib's CNN (MMOD, mmod_human_face_detector.dat, run by dlib) on the sample photos and on frames of
the sample video: faces found and milliseconds a photo.

    python benchmarks/detectors.py         (make bench)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
from common import FACES, save

from leadmatch import faces, models, quality
from leadmatch.photos import PHOTO_SUFFIXES, load

FRAME_STEP = 15  # every 15th frame: about two a second of the 30 fps clip


def sample_photos() -> list:
    """(name, pixels) of every readable sample photo, gallery and probes."""
    photos = []
    for path in sorted(p for p in FACES.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        try:
            photos.append((path.name, load(path).pixels))
        except Exception:  # noqa: BLE001 - the samples hold photos meant to be refused
            continue
    return photos


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


def run(images: list, find) -> tuple[int, float, int]:
    """Faces found in all images, ms an image, and images with at least one face."""
    started, total, with_face = time.perf_counter(), 0, 0
    for _, pixels in images:
        found = len(find(pixels))
        total += found
        with_face += found > 0
    return total, (time.perf_counter() - started) * 1000 / max(1, len(images)), with_face


def main() -> None:
    models.hog_detector(), models.cnn_detector()
    sets = {"sample photos (gallery + probes)": sample_photos(), f"video frames (every {FRAME_STEP}th)": video_frames()}
    hog52 = ("HOG, faces from 52 px (probe search)", lambda p: faces.detect(p, quality.PROBE_DETECT_MIN_PX, "hog"))
    per_set = {
        "sample photos (gallery + probes)": [
            hog52,
            ("HOG, faces from 80 px (gallery, full size)", lambda p: faces.detect(p, 80, "hog")),
            ("HOG, from 80 px, coarse-to-fine (enrollment)", lambda p: faces.detect_gallery(p, 80, "hog")),
            ("CNN (MMOD, dlib), photo at its own size", lambda p: faces.detect(p, 80, "cnn")),
        ],
        f"video frames (every {FRAME_STEP}th)": [
            hog52,
            ("HOG, faces from 36 px", lambda p: faces.detect(p, 36, "hog")),
            ("CNN (MMOD, dlib), faces from 52 px", lambda p: faces.detect(p, 52, "cnn")),
            ("CNN (MMOD, dlib), faces from 36 px", lambda p: faces.detect(p, 36, "cnn")),
        ],
    }
    rows = []
    for set_name, images in sets.items():
        for detector, find in per_set[set_name]:
            total, ms, with_face = run(images, find)
            rows.append({"images": f"{set_name}: {len(images)}", "detector": detector, "faces_found": total,
                         "images_with_a_face": with_face, "ms_per_image": round(ms, 1)})
    save("detectors", "Face detectors: dlib HOG vs dlib CNN (MMOD) on the sample photos and video frames", rows, notes=[
        "the sample photos hold 30 faces the face_recognition CLI finds; the video's faces are 18–111 px wide "
        "(see shared/data/faces/video/README.md)",
        "CNN runs in dlib on the CPU (not converted to ONNX): too slow to be the enrollment default",
        f"measured on a shared {os.cpu_count()}-core machine with other jobs running (load average "
        f"{os.getloadavg()[0]:.1f} at the end)",
    ])


if __name__ == "__main__":
    main()
