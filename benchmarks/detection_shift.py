"""Benchmark: how far the faster detection moves embeddings — gallery photos coarse-to-fine against one
full-size pass, probe photos (first look sized to the photo, strips on two cores) against one pass for faces from
52 px as probes were searched before — and whether each sample probe's nearest subject and its distance change.
A stored embedding is not recomputed: what matters is how far a new one can fall from an old one of the same
photo, against the 0.6 threshold and the spread between two photos of one person.

    python benchmarks/detection_shift.py        (make bench)
"""

from __future__ import annotations

import csv
import statistics
import tempfile
from pathlib import Path

import numpy as np
from common import FACES, save
from enroll import mugshots

from leadmatch.biometrics import faces, quality
from leadmatch.biometrics.photos import load, read_bytes


def gallery_shift(photos: list[Path]) -> list[float]:
    """Embedding distance, photo by photo, between coarse-to-fine and full-size detection (one face each)."""
    shifts = []
    for path in photos:
        data = read_bytes(path)
        full = faces.analyze_many([(data, path.name)], min_face_px=quality.GALLERY_DETECT_MIN_PX)[0]
        coarse = faces.analyze_many([(data, path.name)], min_face_px=quality.GALLERY_DETECT_MIN_PX, coarse=True)[0]
        if len(full.faces) == len(coarse.faces) == 1:
            shifts.append(float(np.linalg.norm(full.faces[0].embedding - coarse.faces[0].embedding)))
    return shifts


def row(label: str, shifts: list[float], photos: int) -> dict:
    return {"photos": label, "compared": f"{len(shifts)} faces in {photos} photos",
            "median_shift": round(statistics.median(shifts), 3), "max_shift": round(max(shifts), 3)}


def gallery_embeddings() -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for path in sorted((FACES / "gallery").glob("*/*")):
        found = faces.analyze_many([(read_bytes(path), path.name)], min_face_px=80, coarse=True)[0]
        out.setdefault(path.parent.name, []).append(found.faces[0].embedding)
    return out


def nearest(embedding: np.ndarray, gallery: dict) -> tuple[str, float]:
    distances = {name: min(float(np.linalg.norm(embedding - e)) for e in faces_) for name, faces_ in gallery.items()}
    name = min(distances, key=distances.get)
    return name, round(distances[name], 3)


def main() -> None:
    rows = []
    sample_gallery = sorted((FACES / "gallery").glob("*/*"))
    rows.append(row("sample gallery: coarse-to-fine vs full size", gallery_shift(sample_gallery), len(sample_gallery)))
    with tempfile.TemporaryDirectory() as temp:
        count = mugshots(Path(temp))
        rows.append(row("480×600 mugshots: coarse-to-fine vs full size",
                        gallery_shift(sorted(Path(temp).glob("*/*"))), count))
    gallery = gallery_embeddings()
    probe_shifts, probe_rows = [], []
    with open(FACES / "probes.csv", newline="") as handle:
        for item in csv.DictReader(handle):
            path = FACES / item["file"]
            data = read_bytes(path)
            before = quality.detect_in_steps(data, path.name, quality.PROBE_DETECT_STEPS)
            now = quality.find_probe_faces(data, path.name)
            photo = load(path)
            same = len(before.faces) == len(now.faces)
            moved = [float(np.linalg.norm(a.embedding - b.embedding)) for a, b in zip(before.faces, now.faces)] if same else []
            probe_shifts += moved
            probe_rows.append({"photos": f"probe {path.name} ({photo.width}×{photo.height})",
                               "compared": f"faces {len(before.faces)} → {len(now.faces)}",
                               "median_shift": round(statistics.median(moved), 3) if moved else None,
                               "max_shift": round(max(moved), 3) if moved else None,
                               "nearest_before": "; ".join(f"{n} {d}" for n, d in (nearest(f.embedding, gallery) for f in before.faces)),
                               "nearest_now": "; ".join(f"{n} {d}" for n, d in (nearest(f.embedding, gallery) for f in now.faces))})
    rows.append(row("sample probes: probe detection now vs one pass from 52 px", probe_shifts, len(probe_rows)))
    rows += probe_rows
    save("detection-shift", "How far faster detection moves embeddings (sample photos, generated mugshots)", rows, notes=[
        "shift: Euclidean distance between the embeddings of the same face found both ways (threshold 0.6; "
        "calibrated threshold on lfw-dev 0.44)",
        "gallery: coarse-to-fine (reduced copies 4×…2×…full size) against one full-size pass, faces from 80 px",
        "probes: the first look sized to the photo (faces from 1/30 of its longer side, at least 52 px) on two strips "
        "and a reduced copy, against one pass for faces from 52 px on the whole photo, as probes were searched before",
        "nearest: the nearest sample-gallery subject and its distance, before and now",
    ])


if __name__ == "__main__":
    main()
