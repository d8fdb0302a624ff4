"""Form and query fields as the library wants them, or one clear message naming the field.

Browsers send text; a field that is not what it should be becomes an InputError (400 with the field's
name), never a 500 or FastAPI's 422."""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

from ..errors import InputError

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def whole_number(value: str, field: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int within [low, high], or an InputError naming `field`."""
    text = (value or "").strip()
    span = f" from {low} to {high}" if low is not None and high is not None else ""
    if not re.fullmatch(r"[+-]?\d{1,9}", text):
        raise InputError(f"{field} {text!r} is not a whole number", f"give a whole number{span}")
    number = int(text)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InputError(f"{field} {number} is out of range", f"give a whole number{span}")
    return number


def optional_number(value: str, field: str, low: int | None = None, high: int | None = None) -> int | None:
    return None if not (value or "").strip() else whole_number(value, field, low, high)


def face_choice(value: str) -> int | str | None:
    """The face picker's field: empty (one face expected), 'largest', or a face number from 1."""
    text = (value or "").strip()
    if not text or text == "largest":
        return text or None
    return whole_number(text, "face", 1, 1000)


def store_upload(home: Path, data: bytes, filename: str) -> Path:
    """Keep an uploaded photo under <home>/uploads/<random id>/ until its search is done; a face-pick round
    trip refers back to it by that id. The id is random, so no one can name another user's upload."""
    if not data and not filename:
        raise InputError("no probe photo was uploaded", "choose a photo file")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename or "probe").name)[:100].lstrip(".") or "probe"
    folder = Path(home) / "uploads" / secrets.token_hex(16)
    folder.mkdir(parents=True, mode=0o700)
    (folder / name).write_bytes(data)
    return folder / name


def find_upload(home: Path, upload_id: str) -> Path:
    """The photo kept by `store_upload` under `upload_id`, or an InputError."""
    if not UPLOAD_ID.fullmatch(upload_id or ""):
        raise InputError("the uploaded photo reference is not valid", "upload the photo again")
    found = sorted((Path(home) / "uploads" / upload_id).glob("*"))
    if not found:
        raise InputError("the uploaded photo is no longer here", "upload the photo again")
    return found[0]


def drop_upload(photo: Path) -> None:
    shutil.rmtree(photo.parent, ignore_errors=True)
