"""dlib's CNN face detector (MMOD) run by ONNX Runtime: the same faces and confidences as
`dlib.cnn_face_detection_model_v1(path)(pixels, 0)`.

dlib's net does three things; the convolutions are the ONNX graph (mmod_export.py), the other two are here:
1. input_rgb_image_pyramid<pyramid_down<6>> (dlib/dnn/input.h): the photo, (value − channel mean) / 256, is the
   first level of a pyramid whose every next level is 5/6 the size (dlib's bilinear `resize_image` of the level
   above, in float), down to 5 rows; the levels are tiled into one image (image_pyramid.h,
   `compute_tiled_image_pyramid_details`) with `outer_padding` around and `padding` between them, zero elsewhere.
2. loss_mmod (dlib/dnn/loss.h, `to_label`): every output cell scoring above 0 is a detector window centred on
   its input point, mapped back from the tile it falls in to the photo (`tiled_pyramid_to_image`), rounded to
   whole pixels; windows are taken best first, dropping any that overlaps one already taken (`overlaps_nms`).
"""

from __future__ import annotations

import functools
import math

from leadmatch.lazy import lazy

from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.models.mmod_onnx import MmodSettings

np = lazy("numpy")

MIN_LEVEL_ROWS = 5  # compute_tiled_image_pyramid_details stops below 5 rows
#: The three unpadded 5×5 stride-2 convolutions need a tiled image of at least 29 px a side (29 → 13 → 5 → 1);
#: dlib fails on smaller ones (or aborts the process), there is no face to find in them anyway.
MIN_TILED_PX = 29

Rect = tuple[int, int, int, int]  # left, top, right, bottom (inclusive, as dlib.rectangle)


@functools.cache
def settings() -> MmodSettings:
    """The detector settings stored in the verified ONNX model's metadata."""
    meta = models.mmod_session().get_modelmeta().custom_metadata_map
    return MmodSettings.from_json(meta["mmod"])


def pyramid_layout(rows: int, cols: int, spec: MmodSettings) -> tuple[list[Rect], int, int]:
    """Where each pyramid level goes in the tiled image, and the tiled image's rows and columns.

    dlib's impl::compute_tiled_image_pyramid_details: the first levels go down the left column, the rest back up
    the right-hand side, bottom-aligned, as long as they do not overlap the photo."""
    padding, outer = spec.pyramid_padding, spec.pyramid_outer_padding
    rate = (spec.pyramid_down - 1.0) / spec.pyramid_down
    sizes = [(cols, rows)]
    nr, nc = rows, cols
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_ROWS:
            break
        sizes.append((nc, nr))
    total_height = sum(h + padding for _, h in sizes) - 2 * padding
    height, prev_width = 0, 0
    for w, h in sizes:
        if w <= cols - prev_width - padding and (height - rows) * 2 >= total_height - rows:
            break
        height += h + padding
        prev_width = w
    height -= padding
    tiled_rows, tiled_cols = height + 2 * outer, cols + 2 * outer
    rects: list[Rect] = []
    y = outer
    index = 0
    while y < height + outer and index < len(sizes):
        w, h = sizes[index]
        rects.append((outer, y, outer + w - 1, y + h - 1))
        y += h + padding
        index += 1
    y -= padding
    while index < len(sizes):
        w, h = sizes[index]
        right, bottom = outer + cols - 1, y - 1
        rect = (right - w + 1, bottom - h + 1, right, bottom)
        first = rects[0]
        if not (rect[2] < first[0] or rect[0] > first[2] or rect[3] < first[1] or rect[1] > first[3]):
            break  # it would overlap the photo: this level and the smaller ones are left out
        rects.append(rect)
        y -= h + padding
        index += 1
    return rects, tiled_rows, tiled_cols


def _sample_positions(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (or columns) of dlib's bilinear resize_image: for each output index the source index below, the one
    above and the fraction between them. dlib steps by (n_in − 1)/(n_out − 1) from 0, adding in double."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    position = np.cumsum(np.concatenate(([-scale], np.full(n_out, scale))))[1:]
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (position - low).astype(np.float32)


def _resize_bilinear(level: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's resize_image (bilinear, float planes) of a 3×r×c level to 3×rows×cols."""
    top, bottom, fy = _sample_positions(level.shape[1], rows)
    left, right, fx = _sample_positions(level.shape[2], cols)
    # separable: between rows first, then between columns (the same weights as dlib's four-term sum; the
    # rounding differs by about one float ulp)
    fy = fy[None, :, None]
    between_rows = (1 - fy) * level[:, top, :] + fy * level[:, bottom, :]
    return (1 - fx) * between_rows[:, :, left] + fx * between_rows[:, :, right]


def tiled_pyramid(pixels: np.ndarray, spec: MmodSettings) -> tuple[np.ndarray, list[Rect]]:
    """RGB uint8 H×W×3 photo → (float32 1×3×R×C tiled pyramid, where each level sits), as dlib's input layer."""
    rows, cols = pixels.shape[:2]
    rects, tiled_rows, tiled_cols = pyramid_layout(rows, cols, spec)
    tensor = np.zeros((3, tiled_rows, tiled_cols), dtype=np.float32)
    means = np.array(spec.means, dtype=np.float32)[:, None, None]
    level = (np.moveaxis(pixels, 2, 0).astype(np.float32) - means) / np.float32(256)
    left, top, right, bottom = rects[0]
    tensor[:, top:bottom + 1, left:right + 1] = level
    for left, top, right, bottom in rects[1:]:
        level = _resize_bilinear(level, bottom - top + 1, right - left + 1)
        tensor[:, top:bottom + 1, left:right + 1] = level
    return tensor[None], rects


def _nearest_level(rects: list[Rect], x: float, y: float) -> int:
    """dlib's nearest_rect: the first level containing the (rounded) point, else the closest one."""
    px, py = math.floor(x + 0.5), math.floor(y + 0.5)
    best, best_distance = 0, math.inf
    for index, (left, top, right, bottom) in enumerate(rects):
        if left <= px <= right and top <= py <= bottom:
            return index
        nx, ny = min(max(px, left), right), min(max(py, top), bottom)
        distance = math.hypot(nx - px, ny - py)
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def _round(value: float) -> int:
    """std::lround: halves away from zero."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def _area(rect: Rect) -> int:
    return max(0, rect[2] - rect[0] + 1) * max(0, rect[3] - rect[1] + 1)


def _overlaps(a: Rect, b: Rect, spec: MmodSettings) -> bool:
    """dlib's test_box_overlap with the detector's non-max-suppression thresholds."""
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return (inner / outer > spec.nms_iou or inner / _area(a) > spec.nms_covered
            or inner / _area(b) > spec.nms_covered)


def decode(scores: np.ndarray, rects: list[Rect], spec: MmodSettings,
           threshold: float = 0.0) -> list[tuple[Rect, float]]:
    """Output scores (h×w) → [(rect in photo pixels, confidence)], best first, after non-max suppression."""
    rows, cols = np.nonzero(scores > threshold)
    candidates = []
    half_w, half_h = (spec.window[0] - 1) / 2, (spec.window[1] - 1) / 2
    ratio = spec.pyramid_down / (spec.pyramid_down - 1.0)
    for r, c in zip(rows.tolist(), cols.tolist()):
        x, y = float(spec.stride * c + spec.offset), float(spec.stride * r + spec.offset)
        level = _nearest_level(rects, x, y)
        corners = []
        for cx, cy in ((x - half_w - rects[level][0], y - half_h - rects[level][1]),
                       (x + half_w - rects[level][0], y + half_h - rects[level][1])):
            for _ in range(level):  # pyramid_down<N>::point_up, once per level
                cx, cy = cx * ratio + 0.3, cy * ratio + 0.3
            corners.append((cx, cy))
        (l, t), (rt, b) = corners
        candidates.append(((_round(l), _round(t), _round(rt), _round(b)), float(scores[r, c])))
    candidates.sort(key=lambda item: -item[1])
    kept: list[tuple[Rect, float]] = []
    for rect, score in candidates:
        if not any(_overlaps(other, rect, spec) for other, _ in kept):
            kept.append((rect, score))
    return kept


def detect(pixels: np.ndarray) -> list[tuple[Rect, float]]:
    """Faces in an RGB uint8 photo: [((left, top, right, bottom), confidence)], best first — what
    dlib.cnn_face_detection_model_v1(...)(pixels, 0) returns, computed by ONNX Runtime."""
    spec = settings()
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        return []
    tensor, rects = tiled_pyramid(np.ascontiguousarray(pixels[:, :, :3]), spec)
    if min(tensor.shape[2:]) < MIN_TILED_PX:
        return []
    scores = models.mmod_session().run(None, {"pyramid": tensor})[0]
    return decode(scores[0, 0], rects, spec)
