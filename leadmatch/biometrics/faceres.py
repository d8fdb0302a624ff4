"""FaceRes descriptors: a face's dlib box in, a unit-length 1024-d descriptor out.

FaceRes is fed the way its authors trained it (issue 23): a square crop around the face, resized to 224×224;
the converted graph turns it to BGR and subtracts the channel means. The crop is the dlib box (top, right,
bottom, left) made square about its centre, its side `CROP_SCALE` × the box's larger side (the box plus 10 %
on each side), shifted by `CROP_SHIFT` box sizes; what lies outside the photo is black. A face smaller than
the crop is enlarged with bicubic interpolation (bilinear blurred the small faces of CCTV-like probes: rank-1
91.6 → 91.9 % there and 95.6 → 95.8 % at full resolution on lfw-dev, README "A second face model").
"""

from __future__ import annotations

from leadmatch.lazy import lazy

from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.models.faceres_onnx import CROP_PX, DESCRIPTOR_DIM

cv2 = lazy("cv2")
np = lazy("numpy")

#: Side of the square crop in box sizes, and its centre's shift right and down in box sizes (measured on
#: lfw-dev, see README "A second face model"): the box plus 10 % each side.
CROP_SCALE = 1.2
CROP_SHIFT = (0.0, 0.0)


def crop(pixels: np.ndarray, box: tuple, scale_by: float = CROP_SCALE,
         shift: tuple[float, float] = CROP_SHIFT) -> np.ndarray:
    """The 224×224×3 uint8 RGB crop FaceRes is fed for the face in `box` (top, right, bottom, left): a square of
    `scale_by` box sizes, its centre moved by `shift` (right, down) box sizes."""
    top, right, bottom, left = (float(v) for v in box)
    size = max(right - left, bottom - top)
    side = scale_by * size
    centre_x = (left + right) / 2 + shift[0] * size
    centre_y = (top + bottom) / 2 + shift[1] * size
    scale = CROP_PX / side
    # one affine warp maps the square onto 224×224 (area-like when shrinking: pre-blur is not needed at the
    # sizes seen, and INTER_AREA is not available to warpAffine)
    matrix = np.array([[scale, 0, (CROP_PX / 2) - scale * centre_x],
                       [0, scale, (CROP_PX / 2) - scale * centre_y]], dtype=np.float64)
    source = pixels
    if scale < 0.5:  # shrink first by area so a large face is not aliased
        factor = 0.5 / scale
        source = cv2.resize(pixels, (max(1, round(pixels.shape[1] / factor)), max(1, round(pixels.shape[0] / factor))),
                            interpolation=cv2.INTER_AREA)
        matrix[:, :2] *= factor
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_LINEAR  # enlarging: bicubic keeps edges
    return cv2.warpAffine(np.ascontiguousarray(source), matrix, (CROP_PX, CROP_PX), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def embed_crops(crops: list[np.ndarray]) -> np.ndarray:
    """224×224 RGB crops → float32 n×1024 descriptors, each scaled to unit length (the fusion uses FR/‖FR‖)."""
    return unit(raw_descriptors(crops))


def raw_descriptors(crops: list[np.ndarray]) -> np.ndarray:
    """The converted graph's own output for `crops` (not normalised): what the agreement check compares.

    One crop a run: on one thread a batch is slower per face than single crops (9–13 ms against 60 ms per face
    for 20 crops), its activations no longer fitting the cache."""
    if not crops:
        return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
    session = models.faceres_session()
    return np.concatenate([session.run(None, {"crops": np.ascontiguousarray(c, dtype=np.uint8)[None]})[0]
                           for c in crops]).astype(np.float32, copy=False)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def describe(pixels: np.ndarray, boxes: list[tuple]) -> np.ndarray:
    """Unit FaceRes descriptors (n×1024) for the faces at `boxes` in one photo's pixels."""
    return embed_crops([crop(pixels, box) for box in boxes])
