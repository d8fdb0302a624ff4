"""Face images for people to compare: the probe's face and each candidate's, cut from the stored photos. Three
styles: `crop` (the detected box with a margin, as found), `chip` (aligned on the eyes: both eyes level at the
same place and the same distance apart in every chip, so probe and candidate can be laid over each other) and
`photo` (the whole photo, the face boxed). Reading them follows the same need-to-know rule as reading the search."""

from __future__ import annotations

import io
import json
from pathlib import Path

from leadmatch.lazy import lazy

from leadmatch.governance.accounts import Actor
from leadmatch.governance.casework import can_read
from leadmatch.errors import NotFound
from leadmatch.biometrics import faces
from leadmatch.biometrics.photos import decode
from leadmatch.record.workspace import Workspace

Image = lazy("PIL.Image")
ImageDraw = lazy("PIL.ImageDraw")

MARGIN = 0.35
#: Side by side at a size a person can judge (probe and candidate at the same scale); `LARGE` when enlarged.
SIZE = 320
LARGE = 720
#: An aligned chip's context around the eyes and mouth (dlib's chip padding: 0.25 is the embedder's tight chip;
#: this shows forehead, ears and chin too, what a person compares).
CHIP_PADDING = 0.6
#: The longest side of a whole photo as shown.
PHOTO_SIZE = 1600
STYLES = ("crop", "chip", "photo")


def render(data: bytes, box: list[int] | tuple, size: int = SIZE, style: str = "crop") -> bytes:
    """The face in `box` of the photo `data` as a PNG in `style` (see the module's docstring)."""
    if style == "chip":
        return face_chip_png(data, box, size)
    if style == "photo":
        return photo_png(data, box)
    return face_crop_png(data, box, size)


def face_chip_png(data: bytes, box: list[int] | tuple, size: int = SIZE, padding: float = CHIP_PADDING) -> bytes:
    """The face in `box` aligned on its eyes (dlib's 5-point landmarks, as the embedder aligns it), `size` px
    square: every chip puts the eyes at the same place at the same scale."""
    pixels = decode(data).pixels
    chip = faces.aligned_chip(pixels, tuple(box), size, padding)
    out = io.BytesIO()
    Image.fromarray(chip).save(out, "PNG")
    return out.getvalue()


def photo_png(data: bytes, box: list[int] | tuple, longest: int = PHOTO_SIZE) -> bytes:
    """The whole photo, at most `longest` px on its longest side, the face in `box` outlined."""
    image = Image.fromarray(decode(data).pixels)
    scale = min(1.0, longest / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    top, right, bottom, left = (round(v * scale) for v in box)
    ImageDraw.Draw(image).rectangle((left, top, right, bottom), outline=(255, 200, 0), width=max(2, image.width // 300))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def face_crop_png(data: bytes, box: list[int] | tuple, size: int = SIZE, margin: float = MARGIN) -> bytes:
    """The face in `box` (top, right, bottom, left) with a margin, as a PNG about `size` px tall."""
    pixels = decode(data).pixels
    top, right, bottom, left = box
    pad_y, pad_x = int((bottom - top) * margin), int((right - left) * margin)
    height, width = pixels.shape[:2]
    crop = Image.fromarray(pixels[max(0, top - pad_y):min(height, bottom + pad_y),
                                  max(0, left - pad_x):min(width, right + pad_x)])
    crop.thumbnail((size, size)) if max(crop.size) > size else None
    if max(crop.size) < size:
        scale = size / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
    out = io.BytesIO()
    crop.save(out, "PNG")
    return out.getvalue()


def frame_crop_png(clip: Path, time_s: float, box: list[int] | tuple, size: int = SIZE) -> bytes:
    """The face in `box` of the clip's frame at `time_s` (seeking by time: the nearest decodable frame), as a
    PNG; a grey tile if the frame cannot be read back."""
    import cv2

    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    try:
        capture.set(cv2.CAP_PROP_POS_MSEC, float(time_s) * 1000.0)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        return unavailable_png("frame could not\nbe read back", size)
    encoded = cv2.imencode(".png", frame)[1].tobytes()
    return face_crop_png(encoded, box, size)


def unavailable_png(text: str, size: int = SIZE) -> bytes:
    """A grey tile saying why a photo cannot be shown (removed subject, purged probe)."""
    tile = Image.new("RGB", (size, size), (225, 225, 225))
    ImageDraw.Draw(tile).multiline_text((12, size // 2 - 20), text, fill=(60, 60, 60))
    out = io.BytesIO()
    tile.save(out, "PNG")
    return out.getvalue()


def _search_row(ws: Workspace, actor: Actor, search_id: str):
    row = ws.conn.execute("SELECT * FROM searches WHERE id = ?", (search_id,)).fetchone()
    if row is None:
        raise NotFound(f"no search {search_id!r}", "see the search list")
    can_read(ws, actor, row)
    return row


def probe_crop(ws: Workspace, actor: Actor, search_id: str, size: int = SIZE, style: str = "crop") -> bytes:
    """The probe's face (the best frame of a clip, the first of several stills) in `style`."""
    row = _search_row(ws, actor, search_id)
    if not row["probe_stored_path"] or not (ws.home / row["probe_stored_path"]).is_file():
        return unavailable_png("probe photo purged\nunder retention rules", size)
    return render((ws.home / row["probe_stored_path"]).read_bytes(), json.loads(row["box"]), size, style)


def probe_frame_crop(ws: Workspace, actor: Actor, search_id: str, number: int, size: int = SIZE,
                     style: str = "crop") -> bytes:
    """Probe face `number` (from 1) of a search with several: a video frame or one of several stills."""
    row = _search_row(ws, actor, search_id)
    frames = json.loads(row["probe_frames"] or "[]")
    if not 1 <= number <= len(frames):
        if row["purged_at"]:
            return unavailable_png("probe purged\nunder retention rules", size)
        raise NotFound(f"search {search_id} has no probe face {number}", f"pick 1 to {len(frames)}")
    frame = frames[number - 1]
    path = ws.home / frame["stored_path"]
    if not path.is_file():
        return unavailable_png("probe purged\nunder retention rules", size)
    return render(path.read_bytes(), frame["box"], size, style)


def candidate_crop(ws: Workspace, actor: Actor, search_id: str, rank: int, size: int = SIZE,
                   face_id: int | None = None, style: str = "crop") -> bytes:
    """Candidate `rank`'s face in `style`; with `face_id`, another enrolled photo of that subject listed on the
    candidate."""
    _search_row(ws, actor, search_id)
    cand = ws.conn.execute("SELECT face_id, photo_sha256, box, faces FROM candidates WHERE search_id = ? AND rank = ?",
                           (search_id, rank)).fetchone()
    if cand is None:
        raise NotFound(f"search {search_id} has no candidate at rank {rank}", "pick a listed rank")
    if face_id is None or face_id == cand["face_id"]:
        sha, box = cand["photo_sha256"], json.loads(cand["box"])
    else:
        listed = {f["face_id"]: f for f in json.loads(cand["faces"] or "[]")}
        if face_id not in listed:
            raise NotFound(f"face {face_id} is not listed on candidate {rank}", "pick one of its matched photos")
        face = ws.conn.execute("SELECT box_top, box_right, box_bottom, box_left FROM faces WHERE id = ?",
                               (face_id,)).fetchone()
        if face is None:
            return unavailable_png("gallery photo removed\nsince this search", size)
        sha, box = listed[face_id]["photo_sha256"], list(face)
    photo = ws.conn.execute("SELECT stored_path FROM photos WHERE sha256 = ? LIMIT 1", (sha,)).fetchone()
    if photo is None or not (ws.home / photo["stored_path"]).is_file():
        return unavailable_png("gallery photo removed\nsince this search", size)
    return render((ws.home / photo["stored_path"]).read_bytes(), box, size, style)
