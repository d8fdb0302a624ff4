"""Finding and embedding faces: photo in, one `Face` per face out, numbered left to right.

`analyze_bytes` is a pure function of the photo's bytes and the options, so enrollment can run it in worker
processes (or, later, on a cluster) and get the same answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from leadmatch.lazy import lazy

from leadmatch.biometrics import cnn_detector
from leadmatch.biometrics.models import registry as models
from leadmatch.errors import InputError, PhotoError
from leadmatch.biometrics.photos import Photo, decode

cv2 = lazy("cv2")
np = lazy("numpy")

#: HOG's detection window is 80 px: a face smaller than that in the scaled copy is not found.
DETECTOR_WINDOW_PX = 80
EMBEDDING_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
DETECTORS = ("hog", "cnn")
#: Descriptor engines: the same dlib ResNet weights, run by ONNX Runtime (converted, ~20× faster) or by dlib.
ENGINES = ("onnx", "dlib")
DEFAULT_ENGINE = "onnx"
_ENGINE: list[str | None] = [None]  # set by use_engine(); forked workers inherit it


@dataclass
class Face:
    """One detected face. `box` is (top, right, bottom, left) in the photo's pixels; `index` counts from 1,
    left to right. `size_px` is the box width, `eye_distance_px` the distance between the eye centres,
    `sharpness` the Laplacian variance of the aligned chip (size-independent), `embedding` 128 float32s."""

    index: int
    box: tuple[int, int, int, int]
    size_px: int
    eye_distance_px: float
    sharpness: float
    detector_score: float | None
    embedding: np.ndarray = field(repr=False)

    def quality(self) -> dict:
        """The measured values recorded with every enrollment and search."""
        return {
            "size_px": self.size_px,
            "eye_distance_px": round(self.eye_distance_px, 1),
            "sharpness": round(self.sharpness, 1),
            "detector_score": None if self.detector_score is None else round(self.detector_score, 3),
        }

    def summary(self) -> dict:
        """Number, box and quality, as shown when the agent must pick a face."""
        return {"face": self.index, "box": list(self.box), **self.quality()}


@dataclass
class Analysis:
    """What `analyze_bytes` found in one photo: its sha256, size and faces; `pixels` the decoded photo when
    asked for (`analyze_many(keep_pixels=True)`: a second model embeds from them without decoding again)."""

    sha256: str
    width: int
    height: int
    faces: list[Face]
    pixels: np.ndarray | None = field(default=None, repr=False)
    detector: str = "hog"  # the detector that found `faces` ("cnn" where HOG found none, see quality)



def detection_scale(min_face_px: int) -> float:
    """Scale factor that makes a face of `min_face_px` fill the detector's 80 px window."""
    if min_face_px < 20:
        raise InputError(f"minimum face size {min_face_px} px is below 20 px", "use 20 or more")
    return DETECTOR_WINDOW_PX / float(min_face_px)


def _scaled(pixels: np.ndarray, scale: float) -> np.ndarray:
    """`pixels` resized by `scale`: area-averaged down, bilinear up, unchanged at 1."""
    if abs(scale - 1.0) < 1e-3:
        return pixels
    height, width = pixels.shape[:2]
    return cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _in_photo(box: tuple, scale: float, width: int, height: int, offset: int = 0) -> tuple | None:
    """A box (top, right, bottom, left) found on a copy scaled by `scale`, cut `offset` px from the copy's left
    → the box in the photo's pixels, clipped to it; None for a box under 4 px."""
    top, right, bottom, left = box
    top, bottom = max(0, round(top / scale)), min(height, round(bottom / scale))
    left, right = max(0, round((left + offset) / scale)), min(width, round((right + offset) / scale))
    return (top, right, bottom, left) if bottom - top >= 4 and right - left >= 4 else None


def detect(pixels: np.ndarray, min_face_px: int = 48, detector: str = "hog") -> list[tuple[tuple, float | None]]:
    """Find faces of at least about `min_face_px` wide. Returns [(box, score)], box as (top, right, bottom, left)
    in `pixels` coordinates, clipped to the image."""
    if detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}", "use hog or cnn")
    scale = detection_scale(min_face_px)
    height, width = pixels.shape[:2]
    scaled = _scaled(pixels, scale)
    if detector == "hog":
        rects, scores, _ = models.hog_detector().run(scaled, 0, 0.0)
        pairs = [(r, float(s)) for r, s in zip(rects, scores)]
    elif engine() == "dlib":  # dlib's own CNN, kept for comparison (`--engine dlib`)
        pairs = [(d.rect, float(d.confidence)) for d in models.cnn_detector()(scaled, 0)]
    else:  # the same CNN converted to ONNX: same boxes and confidences, ~20× faster than dlib
        import dlib

        pairs = [(dlib.rectangle(*rect), score) for rect, score in cnn_detector.detect(scaled)]
    found = []
    for rect, score in pairs:
        box = _in_photo((rect.top(), rect.right(), rect.bottom(), rect.left()), scale, width, height)
        if box:
            found.append((box, score))
    found.sort(key=lambda item: (item[0][3], item[0][0]))  # left to right, then top to bottom
    return found


def coarse_factor(width: int, height: int) -> float:
    """Reduction of the first, coarsest copy, at most 4: the copy's short side is 300 px, so a face a third of
    the photo wide still spans 100 px there, above HOG's 80 px window. 1 (no coarse pass) for photos under 375 px."""
    factor = min(width, height) / COARSE_SHORT_SIDE_PX
    return min(4.0, factor) if factor >= 1.25 else 1.0


def coarse_factors(width: int, height: int) -> list[float]:
    """The reductions detect_gallery tries in turn: `coarse_factor`, halved while it stays ≥ 1.25, then 1 (full
    size). Halving rather than jumping to full size: a 200 px mugshot face missed at ¼ size is found at ½ size,
    for a quarter of the full-size cost."""
    factor, factors = coarse_factor(width, height), []
    while factor >= 1.25:
        factors.append(factor)
        factor /= 2
    return factors + [1.0]


#: Coarse-to-fine accepts what a reduced copy finds only if every face is this much above its minimum size;
#: smaller faces there are placed less precisely, so the photo is searched again at the next finer size.
COARSE_MARGIN = 1.1
COARSE_SHORT_SIDE_PX = 300


def _reduced(pixels: np.ndarray, factor: float) -> np.ndarray:
    height, width = pixels.shape[:2]
    return cv2.resize(pixels, (max(1, round(width / factor)), max(1, round(height / factor))),
                      interpolation=cv2.INTER_AREA)


def _scaled_up(found: list, factor: float, width: int, height: int) -> list:
    """Boxes found on a copy reduced by `factor` → boxes in the full photo's pixels."""
    return [((max(0, round(top * factor)), min(width, round(right * factor)),
              min(height, round(bottom * factor)), max(0, round(left * factor))), score)
            for (top, right, bottom, left), score in found]


def detect_gallery(pixels: np.ndarray, min_face_px: int = 80, detector: str = "hog") -> list[tuple[tuple, float | None]]:
    """Coarse-to-fine detection for gallery photos (most mugshot faces are 200+ px): HOG on copies reduced by each
    of `coarse_factors` in turn, accepting the first that finds faces all well above its minimum (see
    COARSE_MARGIN); full size last. Same output as `detect`. A second face smaller than a coarse minimum can go
    unseen when a large one is found; the large one is the face enrolled."""
    height, width = pixels.shape[:2]
    if detector != "hog":
        return detect(pixels, min_face_px=min_face_px, detector=detector)
    for factor in coarse_factors(width, height)[:-1]:
        found = _scaled_up(detect(_reduced(pixels, factor), min_face_px=min_face_px), factor, width, height)
        if found and all(box[1] - box[3] >= COARSE_MARGIN * min_face_px * factor for box, _ in found):
            return found
    return detect(pixels, min_face_px=min_face_px, detector=detector)


#: Probe photos are searched on two cores: the photo, scaled for the smallest face looked for, is cut into
#: PROBE_STRIPS vertical strips, one a thread (dlib's HOG releases the GIL), overlapping by the widest face a strip
#: must find whole. Wider faces are found on a copy reduced so that they fit HOG's window: STRIP_FACE_RATIO × the
#: smallest face. The geometry is fixed, not taken from the core count, so a probe gives the same faces on any
#: machine. Below PARALLEL_MIN_PIXELS (scaled) one pass is as fast.
PROBE_STRIPS = 2
STRIP_FACE_RATIO = 4
PARALLEL_MIN_PIXELS = 1_500_000
#: A face a strip finds at least this share as wide as an overlapping one on the reduced copy is the same face,
#: placed at the finer scale; narrower, it is a part of a face too wide for the strip, and the copy's box is kept.
SAME_FACE_WIDTH_SHARE = 0.8
_THREADS: dict = {}


def detection_threads() -> int:
    """Threads a probe's detection may use: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _thread_detector():
    """This thread's own HOG detector: one object keeps per-call state, so threads must not share it. A copy
    through dlib's serialization takes 1 ms; building one (`get_frontal_face_detector`) takes 200."""
    import pickle
    import threading

    local = _THREADS.setdefault("local", threading.local())
    if getattr(local, "detector", None) is None:
        local.detector = pickle.loads(pickle.dumps(models.hog_detector()))
    return local.detector


def _hog(pixels: np.ndarray) -> list[tuple[tuple, float]]:
    rects, scores, _ = _thread_detector().run(np.ascontiguousarray(pixels), 0, 0.0)
    return [((r.top(), r.right(), r.bottom(), r.left()), float(s)) for r, s in zip(rects, scores)]


def _hog_reduced(pixels: np.ndarray, factor: float) -> list[tuple[tuple, float]]:
    """HOG on a copy reduced by `factor` (faces from 80 × factor px), boxes in `pixels` coordinates."""
    height, width = pixels.shape[:2]
    if min(width, height) / factor < DETECTOR_WINDOW_PX:
        return []
    return _scaled_up(_hog(_reduced(pixels, factor)), factor, width, height)


def _executor(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    # per process: a forked worker inherits the pool object but not its threads, and would wait on it forever
    if _THREADS.get("owner") != (os.getpid(), threads):
        _THREADS["pool"] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="leadmatch-hog")
        _THREADS["owner"] = (os.getpid(), threads)
    return _THREADS["pool"]


def _overlaps(a: tuple, b: tuple) -> bool:
    """Whether two boxes (top, right, bottom, left) share at least half of the smaller one."""
    height = min(a[2], b[2]) - max(a[0], b[0])
    width = min(a[1], b[1]) - max(a[3], b[3])
    if height <= 0 or width <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[1] - a[3]), (b[2] - b[0]) * (b[1] - b[3]))
    return height * width >= 0.5 * smaller


def detect_probe(pixels: np.ndarray, min_face_px: int = 52, detector: str = "hog",
                 threads: int | None = None) -> list[tuple[tuple, float | None]]:
    """Detection for probe photos and video frames, whose latency an agent waits on. HOG: PROBE_STRIPS strips of
    the scaled photo, overlapping by the widest face they must find whole, plus one reduced copy of the whole
    photo for wider faces, run on up to `threads` threads (default: the cores this process may use). Same output
    as `detect`; where a face is found twice the strip's (finer) box is kept. Small photos and the CNN: `detect`."""
    height, width = pixels.shape[:2]
    scale = detection_scale(min_face_px)
    if detector != "hog" or width * height * scale * scale < PARALLEL_MIN_PIXELS:
        return detect(pixels, min_face_px=min_face_px, detector=detector)
    threads = threads or detection_threads()
    scaled = _scaled(pixels, scale)
    wide_min = STRIP_FACE_RATIO * min_face_px
    # a strip finds whole every face up to a little over the copy's minimum, plus a HOG cell block of context
    overlap = int(COARSE_MARGIN * wide_min * scale) + 16
    step = scaled.shape[1] / PROBE_STRIPS
    strips = [(max(0, int(i * step) - overlap // 2), min(scaled.shape[1], int((i + 1) * step) + overlap // 2))
              for i in range(PROBE_STRIPS)]
    models.hog_detector()  # built once, here, before the threads copy it (each would build its own: 200 ms)
    if threads > 1:  # the strips on the pool's threads, the reduced copy (a twelfth of the work) on this one
        pool = _executor(PROBE_STRIPS)
        parts = [pool.submit(_hog, scaled[:, start:end]) for start, end in strips]
        wide = _hog_reduced(pixels, wide_min / DETECTOR_WINDOW_PX)
        results = [part.result() for part in parts]
    else:
        results = [_hog(scaled[:, start:end]) for start, end in strips]
        wide = _hog_reduced(pixels, wide_min / DETECTOR_WINDOW_PX)
    found: list[tuple[tuple, float | None]] = []
    for (start, _), result in zip(strips, results):
        for strip_box, score in result:
            box = _in_photo(strip_box, scale, width, height, offset=start)
            if box is None:
                continue
            twin = next((i for i, (other, _) in enumerate(found) if _overlaps(box, other)), None)
            if twin is None:
                found.append((box, score))
            elif score > found[twin][1]:  # the same face in two strips' overlap
                found[twin] = (box, score)
    for box, score in wide:
        twins = [i for i, (other, _) in enumerate(found) if _overlaps(box, other)]
        if any(found[i][0][1] - found[i][0][3] >= SAME_FACE_WIDTH_SHARE * (box[1] - box[3]) for i in twins):
            continue
        found = [item for i, item in enumerate(found) if i not in twins] + [(box, score)]
    found.sort(key=lambda item: (item[0][3], item[0][0]))
    return found


def engine() -> str:
    """The descriptor engine of this process: `onnx` (default) or `dlib` (`LEADMATCH_ENGINE`, `use_engine`)."""
    name = _ENGINE[0] or os.environ.get("LEADMATCH_ENGINE", "") or DEFAULT_ENGINE
    if name not in ENGINES:
        raise InputError(f"unknown descriptor engine {name!r}", "use onnx or dlib")
    return name


def use_engine(name: str | None) -> None:
    """Pick the descriptor engine for this process and the workers it forks (None: back to the default)."""
    if name is not None and name not in ENGINES:
        raise InputError(f"unknown descriptor engine {name!r}", "use onnx or dlib")
    _ENGINE[0] = name


def prepare() -> None:
    """Load (and for ONNX, convert and verify) the descriptor before forking workers, so a bad model file stops
    the run once, in the parent, with its exit code; and build the detector and landmark model here, so forked
    workers inherit them rather than each spending a quarter second on its own (HOG's alone takes 200 ms)."""
    models.hog_detector()
    models.landmarks_5()
    if engine() == "onnx":
        models.onnx_path()
    else:
        models.encoder()


def embed_chips(chips: list[np.ndarray], engine_name: str | None = None) -> np.ndarray:
    """Aligned 150×150 RGB chips → float32 n×128 embeddings, in one batch for ONNX Runtime. Both engines run the
    same dlib weights and agree within 1e-6 per component."""
    if not chips:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    if (engine_name or engine()) == "dlib":
        encoder = models.encoder()
        return np.array([encoder.compute_face_descriptor(chip) for chip in chips], dtype=np.float32)
    batch = np.ascontiguousarray(np.stack(chips), dtype=np.uint8)
    return models.ort_session().run(None, {"chips": batch})[0].astype(np.float32, copy=False)


def measure(pixels: np.ndarray, box: tuple, index: int, score: float | None) -> tuple[Face, np.ndarray]:
    """Landmarks, aligned chip and quality for the face in `box` (full-resolution pixels). Returns the Face,
    its embedding not yet computed, and the chip to embed."""
    import dlib

    top, right, bottom, left = box
    shape = models.landmarks_5()(pixels, dlib.rectangle(left, top, right, bottom))
    chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)
    # 5-point model: 0-1 are one eye's corners, 2-3 the other's, 4 the nose.
    eye_distance = float(np.linalg.norm(points[0:2].mean(axis=0) - points[2:4].mean(axis=0)))
    gray = cv2.cvtColor(np.asarray(chip), cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    face = Face(
        index=index,
        box=tuple(int(v) for v in box),
        size_px=int(right - left),
        eye_distance_px=eye_distance,
        sharpness=sharpness,
        detector_score=score,
        embedding=np.zeros(EMBEDDING_DIM, dtype=np.float32),
    )
    return face, chip


def aligned_chip(pixels: np.ndarray, box: tuple, size: int, padding: float) -> np.ndarray:
    """The face in `box` (top, right, bottom, left) as a `size` px square RGB chip aligned on its 5 landmarks
    (eyes level, same place and scale in every chip); `padding` the context around them (dlib's meaning)."""
    import dlib

    top, right, bottom, left = box
    shape = models.landmarks_5()(pixels, dlib.rectangle(left, top, right, bottom))
    return np.asarray(dlib.get_face_chip(pixels, shape, size=size, padding=padding))


def describe(pixels: np.ndarray, box: tuple, index: int, score: float | None) -> Face:
    """Landmarks, aligned chip, quality and embedding for the face in `box` (full-resolution pixels)."""
    face, chip = measure(pixels, box, index, score)
    face.embedding = embed_chips([chip])[0]
    return face


def _measured(photo: Photo, min_face_px: int, detector: str,
              coarse: bool = False, probe: bool = False) -> tuple[Analysis, list[np.ndarray]]:
    if coarse:
        found = detect_gallery(photo.pixels, min_face_px=min_face_px, detector=detector)
    elif probe:
        found = detect_probe(photo.pixels, min_face_px=min_face_px, detector=detector)
    else:
        found = detect(photo.pixels, min_face_px=min_face_px, detector=detector)
    pairs = [measure(photo.pixels, box, i, score) for i, (box, score) in enumerate(found, start=1)]
    analysis = Analysis(sha256=photo.sha256, width=photo.width, height=photo.height, faces=[f for f, _ in pairs],
                        detector=detector)
    return analysis, [chip for _, chip in pairs]


def _embed_into(analyses: list[Analysis], chips: list[np.ndarray]) -> None:
    """Embed all chips in one batch and hand each face its row (chips in the analyses' face order)."""
    embeddings = embed_chips(chips)
    faces = [face for analysis in analyses for face in analysis.faces]
    for face, embedding in zip(faces, embeddings):
        face.embedding = embedding


def analyze(photo: Photo, min_face_px: int = 48, detector: str = "hog", probe: bool = False) -> Analysis:
    """Detect, measure and embed every face in a decoded photo; `probe`: detect as for a probe an agent waits on
    (`detect_probe`, on two cores)."""
    analysis, chips = _measured(photo, min_face_px, detector, probe=probe)
    _embed_into([analysis], chips)
    return analysis


def analyze_bytes(data: bytes, name: str = "photo", min_face_px: int = 48, detector: str = "hog") -> Analysis:
    """Pure per-photo work: bytes → Analysis. Raises PhotoError for unreadable photos."""
    return analyze(decode(data, name=name), min_face_px=min_face_px, detector=detector)


def analyze_many(jobs: list[tuple[bytes, str]], min_face_px: int = 48, detector: str = "hog",
                 coarse: bool = False, keep_pixels: bool = False) -> list[Analysis | PhotoError]:
    """Several photos' bytes → one Analysis (or the PhotoError that refused it) each, in order; the faces of all
    of them are embedded in one batch. `coarse`: detect coarse-to-fine (`detect_gallery`), for gallery photos."""
    results: list[Analysis | PhotoError] = []
    chips: list[np.ndarray] = []
    for data, name in jobs:
        try:
            photo = decode(data, name=name)
            analysis, photo_chips = _measured(photo, min_face_px, detector, coarse)
        except PhotoError as exc:
            results.append(exc)
            continue
        if keep_pixels:
            analysis.pixels = photo.pixels
        results.append(analysis)
        chips.extend(photo_chips)
    _embed_into([r for r in results if isinstance(r, Analysis)], chips)
    return results


__all__ = ["Face", "Analysis", "analyze", "analyze_bytes", "analyze_many", "detect", "describe", "embed_chips",
           "engine", "use_engine", "prepare", "PhotoError"]
