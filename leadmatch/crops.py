"""Face crops for people to compare: the probe's face and each candidate's, cut from the stored photos with a
margin. Reading them follows the same need-to-know rule as reading the search."""

from __future__ import annotations

import io
import json

from PIL import Image, ImageDraw

from .accounts import Actor
from .casework import can_read
from .errors import NotFound
from .photos import decode
from .workspace import Workspace

MARGIN = 0.35
SIZE = 240


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


def probe_crop(ws: Workspace, actor: Actor, search_id: str) -> bytes:
    row = _search_row(ws, actor, search_id)
    if not row["probe_stored_path"] or not (ws.home / row["probe_stored_path"]).is_file():
        return unavailable_png("probe photo purged\nunder retention rules")
    return face_crop_png((ws.home / row["probe_stored_path"]).read_bytes(), json.loads(row["box"]))


def candidate_crop(ws: Workspace, actor: Actor, search_id: str, rank: int) -> bytes:
    _search_row(ws, actor, search_id)
    cand = ws.conn.execute("SELECT photo_sha256, box FROM candidates WHERE search_id = ? AND rank = ?",
                           (search_id, rank)).fetchone()
    if cand is None:
        raise NotFound(f"search {search_id} has no candidate at rank {rank}", "pick a listed rank")
    photo = ws.conn.execute("SELECT stored_path FROM photos WHERE sha256 = ? LIMIT 1", (cand["photo_sha256"],)).fetchone()
    if photo is None or not (ws.home / photo["stored_path"]).is_file():
        return unavailable_png("gallery photo removed\nsince this search")
    return face_crop_png((ws.home / photo["stored_path"]).read_bytes(), json.loads(cand["box"]))
