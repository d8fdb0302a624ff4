"""Loading photos safely: any common format in, an 8-bit RGB array out.

Only regular files are read, and at most `MAX_FILE_BYTES` of them. EXIF orientation is applied,
RGBA/palette/grayscale/16-bit are converted, and a memory budget measured from the header stops pathological
files (decompression bombs) before they are decoded. A decoder's warnings never reach the terminal: those that
say the pixel data is corrupt refuse the photo. File names that are not valid UTF-8 are kept exactly (their
bytes) and shown with the odd bytes escaped.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error

from leadmatch.lazy import lazy

from leadmatch.errors import PhotoError

np = lazy("numpy")
Image = lazy("PIL.Image")
ImageFile = lazy("PIL.ImageFile")
ImageOps = lazy("PIL.ImageOps")

#: Memory one photo may take to decode and search. Larger photos are refused, not shrunk, because a
#: decompression bomb must never reach the decoder.
MEMORY_BUDGET = 2 * 1024**3
#: Working memory per pixel beyond the decoded file itself, measured in the CLI (peak RSS): the RGB copy, the
#: probe detector's upscaled copy (1.54× a side) and its HOG pyramid. A 9400×9400 PNG peaked at 2.7 GB.
WORK_BYTES_PER_PIXEL = 30
#: Largest 8-bit RGB photo decoded, in pixels (about 65 megapixels), from the budget above.
MAX_PIXELS = MEMORY_BUDGET // (WORK_BYTES_PER_PIXEL + 3)
#: Largest photo file read; one byte more is read, to know it is larger.
MAX_FILE_BYTES = 128 * 1024**2
#: What a decoder says when the pixel data is damaged but it carries on (libjpeg, libpng, libtiff).
CORRUPT_WARNINGS = ("corrupt jpeg data", "premature end of jpeg", "bogus", "crc error", "damaged",
                    "not yet in table", "not enough data")

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


def display_name(path) -> str:
    """A path as text for messages and the record: bytes of a non-UTF-8 name are shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def raw_name(path) -> bytes | None:
    """The path's exact bytes when its name is not valid UTF-8 (so `display_name` is not the name), else None."""
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    return None


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, from its `st_mode`."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """Read a photo file's bytes: regular files only (never a FIFO or device), at most `limit`. Raises a
    one-line PhotoError saying why not."""
    name = display_name(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(name, info.st_mode)
        # O_NONBLOCK: if the file was swapped for a FIFO after the check, opening it must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.islink(path):  # where it points is not said: that would tell whether a path exists
            raise PhotoError(f"{name} is a link to nothing", "fix or remove the link", reason="broken-link") from None
        raise PhotoError(f"photo not found: {name}", "check the path", reason="not-found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PhotoError(f"{name} is a link that loops back on itself", "fix or remove the link",
                             reason="broken-link") from None
        raise PhotoError(f"cannot read {name}: {exc.strerror}", "check the file and its permissions") from None
    return read_open(fd, name, limit)


def read_open(fd: int, name: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the file open as `fd` (closed here), if it is a regular file of at most `limit` bytes;
    else a one-line PhotoError about `name`."""
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # before fdopen, which refuses a folder in words of its own
            os.close(fd)
            raise _not_regular(name, mode)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise PhotoError(f"cannot read {name}: {exc.strerror}", "check the file and its permissions") from None
    if len(data) > limit:
        raise PhotoError(f"{name} is larger than {limit // 1024**2} MiB", "give a smaller photo file",
                         reason="too-large")
    return data


def _not_regular(name: str, mode: int) -> PhotoError:
    kind = file_kind(mode)
    if kind == "a folder":
        return PhotoError(f"{name} is a folder, not a photo", "give a photo file", reason="not-a-file")
    return PhotoError(f"{name} is {kind}, not a photo file", "give a regular photo file", reason="not-a-file")


def bytes_per_pixel(mode: str) -> float:
    """Memory a pixel of a photo in this PIL mode is expected to take to decode and search."""
    bits = {"1": 1, "L": 8, "P": 8, "LA": 16, "PA": 16, "La": 16, "RGB": 24, "YCbCr": 24, "LAB": 24, "HSV": 24,
            "RGBA": 32, "RGBa": 32, "RGBX": 32, "CMYK": 32, "I": 32, "F": 32}.get(mode, 64 if "16" in mode else 32)
    return bits / 8 + WORK_BYTES_PER_PIXEL


def decode(data: bytes, name: str = "photo") -> Photo:
    """Decode photo bytes into an upright 8-bit RGB Photo, or raise PhotoError saying why not."""
    if not data:
        raise PhotoError(f"{name} is empty (0 bytes)", "give a JPEG or PNG photo", reason="unreadable")
    digest = sha256_bytes(data)
    with _decoder_messages() as said:
        pixels = _decode_pixels(data, name)
    damage = [line for line in said if any(word in line.lower() for word in CORRUPT_WARNINGS)]
    if damage:
        raise PhotoError(f"{name} is corrupt or truncated: the decoder reports damaged data "
                         f"({damage[0].strip().rstrip('.')})",
                         "re-export or re-copy the photo", reason="corrupt")
    return Photo(pixels=pixels, sha256=digest, width=pixels.shape[1], height=pixels.shape[0])


def _decode_pixels(data: bytes, name: str) -> np.ndarray:
    """Check the size from the header against the memory budget, then decode to upright RGB8."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            per_pixel = bytes_per_pixel(image.mode)
            if width * height * per_pixel > MEMORY_BUDGET:
                most = MEMORY_BUDGET / per_pixel / 1e6
                raise PhotoError(
                    f"{name} is too large ({width}×{height} pixels would need about "
                    f"{width * height * per_pixel / 1024**3:.1f} GiB to decode and search; the limit is "
                    f"{MEMORY_BUDGET / 1024**3:.0f} GiB, about {most:.0f} megapixels)",
                    f"resize it below {most:.0f} megapixels", reason="too-large")
            # face_recognition sets this global to True at import, which would decode a truncated file as
            # partly grey without a word; a truncated photo must be refused, whoever imported what.
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            pixels = _jpeg_pixels(image, data)
            if pixels is not None:
                return pixels
            image.load()
            _check_jpeg_data(image, data)
            ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of a photo already upright
            return _to_rgb8(image)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(f"{name} is too large to decode safely", "resize it", reason="too-large") from None
    except Image.UnidentifiedImageError:
        raise PhotoError(f"{name} is not an image leadmatch can read", "give a JPEG or PNG photo") from None
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct_error, ZeroDivisionError,
            MemoryError) as exc:
        raise PhotoError(f"{name} is corrupt or truncated ({exc})", "re-export or re-copy the photo") from None


#: EXIF orientation → the array operation Pillow's exif_transpose applies (FLIP_LEFT_RIGHT, ROTATE_180,
#: FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _jpeg_pixels(image: Image.Image, data: bytes) -> np.ndarray | None:
    """An ordinary (RGB or grayscale) JPEG decoded by OpenCV's libjpeg, upright by the orientation Pillow reads
    from its EXIF: the very pixels Pillow gives (checked on the sample photos and 300 lfw-dev photos), in one
    pass that also lets `_decoder_messages` hear libjpeg's corrupt-data warnings, where Pillow needs a second
    pass for them. None for any other photo, or where OpenCV cannot decode it: Pillow then decodes it and says
    what is wrong."""
    if image.format != "JPEG" or image.mode not in ("RGB", "L"):
        return None
    import cv2

    orientation = image.getexif().get(0x0112, 1)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (image.height, image.width):
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    turn = _UPRIGHT.get(orientation)
    return np.ascontiguousarray(turn(rgb)) if turn else rgb


def _check_jpeg_data(image: Image.Image, data: bytes) -> None:
    """Pillow's libjpeg keeps its "Corrupt JPEG data" warnings to itself and decodes damaged scans as if
    whole; OpenCV's libjpeg prints them, so a second, 1/8-scale pass (all the entropy decoding, little IDCT)
    lets `_decoder_messages` hear them."""
    if image.format == "JPEG":
        import cv2

        cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)


_stderr_lock = threading.Lock()


class _decoder_messages:
    """Collect what decoders say while decoding, instead of letting it reach the user's terminal: Python
    warnings (PIL's "Corrupt EXIF data") and what C libraries print on file descriptor 2 (libjpeg, libtiff).
    The collected lines are the context value."""

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        _stderr_lock.acquire()
        self._warnings = warnings.catch_warnings(record=True)
        self._caught = self._warnings.__enter__()
        warnings.simplefilter("always")
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            self._sink = tempfile.TemporaryFile()
            os.dup2(self._sink.fileno(), 2)
        except (OSError, ValueError):  # no usable fd 2 (e.g. closed): nothing to capture
            self._saved = None
        return self.lines

    def __exit__(self, *exc) -> None:
        try:
            if self._saved is not None:
                os.dup2(self._saved, 2)
                os.close(self._saved)
                self._sink.seek(0)
                printed = self._sink.read().decode("utf-8", "replace")
                self._sink.close()
                self.lines.extend(line for line in printed.splitlines() if line.strip())
        finally:
            self._warnings.__exit__(*exc)
            _stderr_lock.release()
        self.lines.extend(str(w.message) for w in self._caught
                          if not issubclass(w.category, Image.DecompressionBombWarning))


def load(path: Path) -> Photo:
    """Read and decode the photo at `path`."""
    return decode(read_bytes(path), name=display_name(path))


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
    if image.mode != "RGB":  # converting an RGB photo would only copy it
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
