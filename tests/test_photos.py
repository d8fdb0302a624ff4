"""Loading photos: every common format comes out upright 8-bit RGB; every bad file gets a clear PhotoError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from leadmatch import photos
from leadmatch.errors import PhotoError
from leadmatch.faces import analyze_bytes
from leadmatch.quality import PROBE_DETECT_MIN_PX

from .conftest import GALLERY_DIR, PROBES_DIR

OBAMA = GALLERY_DIR / "barack_obama" / "obama.jpg"


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_zero_byte_file_is_refused(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(PhotoError, match="empty"):
        photos.load(empty)


def test_non_image_is_refused(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n" * 20)
    with pytest.raises(PhotoError, match="not an image"):
        photos.load(text)


def test_truncated_jpeg_is_refused():
    data = OBAMA.read_bytes()
    with pytest.raises(PhotoError, match="corrupt or truncated"):
        photos.decode(data[: len(data) // 3], "truncated.jpg")


def test_truncated_jpeg_is_refused_even_after_face_recognition_is_imported():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition  # noqa: F401  (sets PIL's LOAD_TRUNCATED_IMAGES at import)
    data = OBAMA.read_bytes()
    with pytest.raises(PhotoError, match="corrupt or truncated"):
        photos.decode(data[: len(data) // 2], "truncated.jpg")


def test_corrupt_jpeg_body_is_refused():
    data = bytearray(OBAMA.read_bytes())
    data[2000:] = bytes(len(data) - 2000)  # keep the header, zero the scan data and the end marker
    with pytest.raises(PhotoError):
        photos.decode(bytes(data[:4000]), "corrupt.jpg")


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (12_000, 12_000)))  # 144 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(PhotoError, match="too large") as caught:
        photos.decode(bomb, "bomb.png")
    assert caught.value.reason == "too-large"


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(PhotoError, match="not found"):
        photos.load(tmp_path / "nope.jpg")
    with pytest.raises(PhotoError, match="folder"):
        photos.load(tmp_path)


def test_rgba_palette_grayscale_and_16bit_become_rgb8():
    base = Image.open(OBAMA).convert("RGB").resize((200, 250))
    gray16 = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    assert gray16.mode.startswith("I;16")
    for image in (base.convert("RGBA"), base.convert("P"), base.convert("L"), gray16, base.convert("LA")):
        photo = photos.decode(encode(image), image.mode)
        assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == (250, 200, 3), image.mode
    # 16-bit values are scaled, not clipped to white
    photo = photos.decode(encode(gray16), "16-bit")
    assert 40 < photo.pixels.mean() < 215


def test_16bit_probe_still_finds_the_face():
    rgb = Image.open(OBAMA).convert("L")
    wide = Image.fromarray(np.asarray(rgb, dtype=np.uint16) * 257)
    found = analyze_bytes(encode(wide), "16bit.png", min_face_px=PROBE_DETECT_MIN_PX)
    assert len(found.faces) == 1


def test_exif_rotated_photo_is_turned_upright():
    upright = Image.open(OBAMA).convert("RGB")
    # Store the pixels turned a quarter counter-clockwise, tagged orientation 6 ("turn 90° clockwise to view").
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(sideways, "JPEG", exif=exif.tobytes(), quality=95)
    photo = photos.decode(data, "rotated.jpg")
    assert (photo.width, photo.height) == upright.size
    found = analyze_bytes(data, "rotated.jpg", min_face_px=PROBE_DETECT_MIN_PX)
    assert len(found.faces) == 1
    # Without the EXIF turn the face lies sideways and the frontal detector misses it.
    assert not analyze_bytes(encode(sideways, "JPEG", quality=95), "raw.jpg",
                             min_face_px=PROBE_DETECT_MIN_PX).faces


def test_rgba_sample_probe_loads():
    photo = photos.load(PROBES_DIR / "32bit.png")
    assert photo.pixels.shape[2] == 3


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_escape_as_anything_but_photo_error(data):
    try:
        photos.decode(data, "fuzz")
    except PhotoError:
        pass


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=len(OBAMA.read_bytes()) - 1))
def test_any_truncation_of_a_real_jpeg_is_refused_or_decoded(cut):
    try:
        photo = photos.decode(OBAMA.read_bytes()[:cut], "cut.jpg")
    except PhotoError:
        return
    assert photo.pixels.dtype == np.uint8
