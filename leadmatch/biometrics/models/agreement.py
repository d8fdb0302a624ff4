"""The check that the converted ONNX ResNet and dlib's own give the same embeddings.

Reference chips are the aligned faces of the sample gallery photos; both engines embed them and must agree
within `TOLERANCE` per component, with identical nearest-neighbour rankings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from leadmatch.lazy import lazy

from leadmatch.biometrics import faces
from leadmatch.errors import ModelError, PhotoError
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, load

np = lazy("numpy")

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


#: The detector check runs dlib's own CNN, about 0.3 s on a 320 px photo: a few reduced copies suffice.
DETECTOR_PHOTOS = 4
DETECTOR_LONG_SIDE_PX = 320
BOX_TOLERANCE_PX = 1
CONFIDENCE_TOLERANCE = 1e-3


@dataclass
class DetectorAgreement:
    """Result of running the converted CNN detector and dlib's on `images` reduced copies of photos."""

    photos: str
    images: int
    faces: int
    same_counts: bool
    max_box_diff_px: int
    max_confidence_diff: float

    @property
    def ok(self) -> bool:
        return (self.faces > 0 and self.same_counts and self.max_box_diff_px <= BOX_TOLERANCE_PX
                and self.max_confidence_diff <= CONFIDENCE_TOLERANCE)

    def line(self) -> str:
        """One line for `leadmatch models`."""
        return (f"{self.faces} faces in {self.images} photos from {self.photos} (reduced to "
                f"{DETECTOR_LONG_SIDE_PX} px): {'same' if self.same_counts else 'DIFFERENT'} faces found, boxes "
                f"within {self.max_box_diff_px} px (limit {BOX_TOLERANCE_PX}), max |onnx − dlib| confidence "
                f"{self.max_confidence_diff:.1e} (limit {CONFIDENCE_TOLERANCE:.0e})")


def reduced(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """A copy whose longer side is at most `long_side` px."""
    import cv2

    scale = long_side / max(pixels.shape[:2])
    if scale >= 1:
        return pixels
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def check_detector(folder: Path) -> DetectorAgreement:
    """Run the ONNX CNN detector and dlib's on reduced copies of the first photos under `folder` and compare."""
    from leadmatch.biometrics import cnn_detector
    from leadmatch.biometrics.models import registry as models

    images = faces_found = box_diff = 0
    same, conf_diff = True, 0.0
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        try:
            pixels = reduced(load(path).pixels, DETECTOR_LONG_SIDE_PX)
        except PhotoError:
            continue
        by_dlib = [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
                   for d in models.cnn_detector()(pixels, 0)]
        by_onnx = cnn_detector.detect(pixels)
        images += 1
        faces_found += len(by_dlib)
        same = same and len(by_dlib) == len(by_onnx)
        for (box_a, conf_a), (box_b, conf_b) in zip(by_dlib, by_onnx):
            box_diff = max(box_diff, *(abs(a - b) for a, b in zip(box_a, box_b)))
            conf_diff = max(conf_diff, abs(conf_a - conf_b))
        if images >= DETECTOR_PHOTOS:
            break
    return DetectorAgreement(photos=str(folder), images=images, faces=faces_found, same_counts=same,
                             max_box_diff_px=box_diff, max_confidence_diff=conf_diff)


#: FaceRes against TensorFlow: reference descriptors computed once by the original TensorFlow.js graph run in
#: TensorFlow (tests/data/faceres_reference.py) on face crops kept beside them, so no TensorFlow is needed here.
FACERES_REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "data"
FACERES_TOLERANCE = 1e-4


@dataclass
class FaceresAgreement:
    """Result of running the converted FaceRes on the kept crops against TensorFlow's descriptors for them."""

    crops: int
    max_abs_diff: float
    rankings_identical: bool

    @property
    def ok(self) -> bool:
        return self.crops > 0 and self.max_abs_diff <= FACERES_TOLERANCE and self.rankings_identical

    def line(self) -> str:
        """One line for `leadmatch models`."""
        return (f"{self.crops} reference face crops: max |onnx − tensorflow| = {self.max_abs_diff:.1e} per component "
                f"(limit {FACERES_TOLERANCE:.0e}), nearest-neighbour rankings "
                f"{'identical' if self.rankings_identical else 'DIFFER'}")


def faceres_reference(folder: Path = FACERES_REFERENCE) -> tuple[np.ndarray, np.ndarray] | None:
    """(crops, TensorFlow's descriptors) kept under `folder`, or None where they are not (an install without
    the tests)."""
    crops, reference = folder / "faceres_crops.npz", folder / "faceres_reference.npy"
    if not (crops.is_file() and reference.is_file()):
        return None
    with np.load(crops) as data:
        return data["crops"], np.load(reference)


def check_faceres(folder: Path = FACERES_REFERENCE) -> FaceresAgreement | None:
    """Run the converted FaceRes on the kept crops and compare with TensorFlow's descriptors; None when the
    reference files are not there."""
    from leadmatch.biometrics import faceres

    kept = faceres_reference(folder)
    if kept is None:
        return None
    crops, reference = kept
    ours = faceres.raw_descriptors(list(crops))
    return FaceresAgreement(crops=len(crops), max_abs_diff=float(np.abs(ours - reference).max()),
                            rankings_identical=bool((rankings(faceres.unit(ours))
                                                     == rankings(faceres.unit(reference))).all()))
