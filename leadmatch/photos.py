"""Loading photos safely: any common format in, an 8-bit RGB array out.

EXIF orientation is applied, RGBA/palette/grayscale/16-bit are converted, and a
decompression-bomb limit stops pathological files before they are decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import PhotoError

#: Largest photo decoded, in pixels (about a 100-megapixel camera). Larger files are refused, not shrunk,
#: because a decompression bomb must never reach the decoder.
MAX_PIXELS = 100_000_000

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Photo:
    """A decoded photo: `pixels` is an H×W×3 uint8 RGB array; `sha256` hashes the file's bytes."""

    pixels: np.ndarray
    sha256: str
    width: int
    height: int


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`: the content hash every photo is recorded under."""
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytes:
    """Read a photo file's bytes, turning OS errors into a one-line PhotoError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PhotoError(f"photo not found: {path}", "check the path") from None
    except IsADirectoryError:
        raise PhotoError(f"{path} is a folder, not a photo", "give a photo file") from None
    except OSError as exc:
        raise PhotoError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None


def decode(data: bytes, name: str = "photo") -> Photo:
    """Decode photo bytes into an upright 8-bit RGB Photo, or raise PhotoError saying why not."""
    if not data:
        raise PhotoError(f"{name} is empty (0 bytes)", "give a JPEG or PNG photo", reason="unreadable")
    digest = sha256_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise PhotoError(
                    f"{name} is too large ({width}×{height} pixels, limit {MAX_PIXELS:,})",
                    "resize it below the limit",
                    reason="too-large",
                )
            # face_recognition sets this global to True at import, which would decode a truncated file as
            # partly grey without a word; a truncated photo must be refused, whoever imported what.
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            image.load()
            image = ImageOps.exif_transpose(image)
            pixels = _to_rgb8(image)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(f"{name} is too large to decode safely", "resize it", reason="too-large") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{name} is not an image leadmatch can read", "give a JPEG or PNG photo") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoError(f"{name} is corrupt or truncated ({exc})", "re-export or re-copy the photo") from None
    return Photo(pixels=pixels, sha256=digest, width=pixels.shape[1], height=pixels.shape[0])


def load(path: Path) -> Photo:
    """Read and decode the photo at `path`."""
    return decode(read_bytes(path), name=str(path))


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode to H×W×3 uint8. 16-bit modes are scaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or wide.max() > 255 else 255.0
        gray = np.clip(wide * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, so an alpha-only edge does not read as a dark blob.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
