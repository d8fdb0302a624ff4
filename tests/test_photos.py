"""Loading photos: every common format comes out upright 8-bit RGB; every bad file gets a clear PhotoError."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from leadmatch.biometrics import photos
from leadmatch.biometrics.faces import analyze_bytes
from leadmatch.biometrics.quality import PROBE_DETECT_MIN_PX
from leadmatch.errors import PhotoError

from .helpers import GALLERY_DIR, PROBES_DIR

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


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_pixels_pillow_gives(mode, orientation):
    """JPEGs are decoded by OpenCV (one pass that also hears libjpeg's warnings); the photo must come out exactly
    as Pillow turns it upright, pixel for pixel, for each of the eight EXIF orientations."""
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.open(OBAMA).convert(mode).resize((301, 203)), "JPEG", exif=exif.tobytes(), quality=90)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(photos.decode(data, "turned.jpg").pixels, expected)


def test_rgba_sample_probe_loads():
    photo = photos.load(PROBES_DIR / "32bit.png")
    assert photo.pixels.shape[2] == 3


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_escape_as_anything_but_photo_error(data):
    try:
        photo = photos.decode(data, "fuzz")
    except PhotoError as error:
        assert "fuzz" in str(error) and "\n" not in str(error)  # one line naming the file
        return
    # Whatever decodes is a real 8-bit RGB picture, as every later step expects.
    assert photo.pixels.dtype == np.uint8 and photo.pixels.ndim == 3 and photo.pixels.shape[2] == 3
    assert photo.pixels.shape[0] > 0 and photo.pixels.shape[1] > 0


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=len(OBAMA.read_bytes()) - 1))
def test_any_truncation_of_a_real_jpeg_is_refused_or_decoded(cut):
    try:
        photo = photos.decode(OBAMA.read_bytes()[:cut], "cut.jpg")
    except PhotoError:
        return
    assert photo.pixels.dtype == np.uint8


# Hardening (issue #10) ---------------------------------------------------------------------------------

def test_special_files_are_refused_without_reading_them(tmp_path):
    """/dev/zero would grow memory without end and a FIFO would wait forever for a writer."""
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    for path, words in ((Path("/dev/zero"), "a device"), (tmp_path / "zero.jpg", "a device"),
                        (fifo, "FIFO")):
        with pytest.raises(PhotoError, match=words) as caught:
            photos.read_bytes(path)
        assert caught.value.reason == "not-a-file"


def test_broken_and_looping_links_are_refused_by_name(tmp_path):
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    with pytest.raises(PhotoError, match="link to nothing"):
        photos.read_bytes(tmp_path / "dangling.jpg")
    with pytest.raises(PhotoError, match="loops"):
        photos.read_bytes(tmp_path / "loop.jpg")


def test_reads_at_most_the_size_limit(tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 2049)
    with pytest.raises(PhotoError, match="larger than") as caught:
        photos.read_bytes(big, limit=2048)
    assert caught.value.reason == "too-large"
    assert len(photos.read_bytes(big, limit=2049)) == 2049


def test_bomb_under_the_pixel_count_is_refused_by_its_memory_budget():
    """A 9400×9400 PNG is 88 megapixels in a few KB; decoding and searching it took 2.7 GB."""
    bomb = encode(Image.new("1", (9400, 9400)))
    with pytest.raises(PhotoError, match=r"9400×9400 pixels would need about 2\.\d GiB") as caught:
        photos.decode(bomb, "bomb.png")
    assert caught.value.reason == "too-large"
    assert "limit is 2 GiB" in caught.value.message and "megapixels" in caught.value.hint


def test_a_48_megapixel_photo_is_within_the_budget():
    width, height = 8000, 6000
    assert width * height * photos.bytes_per_pixel("RGB") < photos.MEMORY_BUDGET


def bit_flipped(data: bytes, seed: int, flips: int = 8, start: int = 600) -> bytes:
    rng = random.Random(seed)
    damaged = bytearray(data)
    for _ in range(flips):
        damaged[rng.randrange(start, len(damaged))] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def test_bit_flipped_jpegs_are_refused_as_corrupt_not_searched_damaged(capfd):
    original = photos.decode(OBAMA.read_bytes(), "obama.jpg").pixels.astype(np.int16)
    refused = 0
    for seed in range(30):
        try:
            decoded = photos.decode(bit_flipped(OBAMA.read_bytes(), seed), f"flip{seed}.jpg")
        except PhotoError as exc:
            refused += 1
            assert exc.reason in ("corrupt", "unreadable"), exc
            continue
        # Flips the decoder cannot tell from image data: what gets through is all but the original picture.
        changed = np.abs(decoded.pixels.astype(np.int16) - original).max(axis=2) > 40
        assert changed.mean() < 0.01, seed
    assert refused >= 20
    assert capfd.readouterr().err == ""  # the decoder's own complaints never reach the terminal


def test_corrupt_exif_and_libtiff_warnings_do_not_reach_stderr(capfd):
    base = Image.open(OBAMA).convert("RGB").resize((200, 250))
    exif = Image.Exif()
    exif[0x0112] = 1
    jpeg = bytearray(encode(base, "JPEG", exif=exif.tobytes()))
    start = jpeg.find(b"Exif\x00\x00")
    jpeg[start + 14:start + 22] = b"\xff" * 8  # the IFD's entry count and first entry: garbage offsets
    assert photos.decode(bytes(jpeg), "exif.jpg").width == 200  # damaged metadata only: the pixels are whole
    tiff = encode(base, "TIFF", compression="tiff_lzw")
    reasons = []
    for seed in range(40):  # libtiff prints "Using code not yet in table", "Not enough data at scanline" …
        try:
            photos.decode(bit_flipped(tiff, seed, flips=4, start=0), f"flip{seed}.tif")
        except PhotoError as exc:
            reasons.append(exc.reason)
    assert len(reasons) >= 10  # refused; what libtiff printed about them stays off the terminal
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_non_utf8_names_are_shown_escaped_and_kept_exactly(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    with open(raw, "wb") as handle:
        handle.write(OBAMA.read_bytes())
    path = Path(os.fsdecode(raw))
    assert photos.display_name(path).endswith("caf\\xe9.jpg")
    assert photos.raw_name(path) == raw and photos.raw_name(OBAMA) is None
    assert photos.load(path).width > 0
    with pytest.raises(PhotoError) as caught:
        photos.load(Path(os.fsdecode(os.fsencode(tmp_path) + b"/gone\xff.jpg")))
    assert "gone\\xff.jpg" in str(caught.value)
    str(caught.value).encode("utf-8")  # printable and storable as it is


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=64))
def test_any_bit_flips_of_a_real_jpeg_are_refused_or_decoded_silently(seed, flips):
    try:
        photo = photos.decode(bit_flipped(OBAMA.read_bytes(), seed, flips), "flipped.jpg")
    except PhotoError as exc:
        assert exc.reason in ("corrupt", "unreadable", "too-large")
        return
    assert photo.pixels.dtype == np.uint8 and photo.pixels.ndim == 3
