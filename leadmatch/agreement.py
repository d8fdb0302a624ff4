"""The check that the converted ONNX ResNet and dlib's own give the same embeddings.

Reference chips are the aligned faces of the sample gallery photos; both engines embed them and must agree
within `TOLERANCE` per component, with identical nearest-neighbour rankings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import faces
from .errors import ModelError, PhotoError
from .photos import PHOTO_SUFFIXES, load

TOLERANCE = 1e-5


@dataclass
class Agreement:
    """Result of comparing the two engines on `faces` reference chips from `photos`."""

    photos: str
    faces: int
    max_abs_diff: float
    rankings_identical: bool

    @property
    def ok(self) -> bool:
        return self.faces > 0 and self.max_abs_diff <= TOLERANCE and self.rankings_identical

    def line(self) -> str:
        """One line for `leadmatch models`."""
        return (f"{self.faces} reference faces from {self.photos}: max |onnx − dlib| = {self.max_abs_diff:.1e} per "
                f"component (limit {TOLERANCE:.0e}), nearest-neighbour rankings "
                f"{'identical' if self.rankings_identical else 'DIFFER'}")


def reference_chips(folder: Path, limit: int = 60) -> list[np.ndarray]:
    """Aligned 150×150 chips of the faces in the photos under `folder` (sorted, at most `limit` chips)."""
    chips: list[np.ndarray] = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        try:
            photo = load(path)
        except PhotoError:
            continue
        for index, (box, score) in enumerate(faces.detect(photo.pixels, min_face_px=48), start=1):
            chips.append(faces.measure(photo.pixels, box, index, score)[1])
            if len(chips) >= limit:
                return chips
    return chips


def rankings(embeddings: np.ndarray) -> np.ndarray:
    """For every embedding, the others ordered nearest first (Euclidean), as indices."""
    distances = np.linalg.norm(embeddings[:, None, :] - embeddings[None, :, :], axis=2)
    return np.argsort(distances, axis=1, kind="stable")


def check(folder: Path) -> Agreement:
    """Embed the reference chips from `folder` with both engines and compare them."""
    chips = reference_chips(folder)
    if not chips:
        raise ModelError(f"no reference faces found under {folder}", "pass a folder of photos with --photos")
    by_dlib = faces.embed_chips(chips, "dlib")
    by_onnx = faces.embed_chips(chips, "onnx")
    return Agreement(photos=str(folder), faces=len(chips), max_abs_diff=float(np.abs(by_dlib - by_onnx).max()),
                     rankings_identical=bool((rankings(by_dlib) == rankings(by_onnx)).all()))
