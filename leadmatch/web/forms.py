"""Form and query fields as the library wants them, or one clear message naming the field.

Browsers send text; a field that is not what it should be becomes an InputError (400 with the field's
name), never a 500 or FastAPI's 422."""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

from leadmatch.errors import InputError
from leadmatch.search import leads, probes, video
from leadmatch.search.run import SearchRequest

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
    """The face picker's field: empty (one face expected), 'largest', 'central', or a face number from 1."""
    text = (value or "").strip()
    if not text or text in probes.FACE_CHOICES:
        return text or None
    return whole_number(text, "face", 1, 1000)


def decimal(value: str, field: str, low: float, high: float) -> float:
    """`value` as a float within [low, high], or an InputError naming `field`."""
    text = (value or "").strip()
    if not re.fullmatch(r"\d{1,6}(\.\d{1,6})?|\.\d{1,6}", text):
        raise InputError(f"{field} {text!r} is not a number", f"give a number from {low:g} to {high:g}")
    number = float(text)
    if not low <= number <= high:
        raise InputError(f"{field} {number:g} is out of range", f"give a number from {low:g} to {high:g}")
    return number


def flag(value: str, field: str) -> bool:
    """A checkbox or API flag: empty/false/0/off → False, true/1/on → True."""
    text = (value or "").strip().lower()
    if text in ("", "false", "0", "off", "no"):
        return False
    if text in ("true", "1", "on", "yes"):
        return True
    raise InputError(f"{field} {value!r} is not true or false", "send true or false")


def search_request(*, gallery: str, case: str, purpose: str, justification: str, traditional_means: str,
                   probe_source: str, top_k: str, face: str, detector: str = "hog", track: str = "", every: str = "",
                   best_frames: str = "", fusion: str = "", per_photo: str = "",
                   top_k_field: str = "top_k") -> SearchRequest:
    """A SearchRequest from form text (the probe files are filled in after upload); each field checked here
    with a message naming it, the policy fields by the library."""
    return SearchRequest(
        probe=Path(), gallery=gallery, case=case, purpose=purpose, justification=justification,
        traditional_means=traditional_means, probe_source=probe_source or "original",
        top_k=whole_number(top_k, top_k_field, 2, 50) if (top_k or "").strip() else leads.DEFAULT_CANDIDATES,
        face=face_choice(face), detector=detector or "hog", track=track_choice(track),
        every_s=decimal(every, "every", 0.04, 10.0) if (every or "").strip() else video.DEFAULT_EVERY_S,
        best_frames=whole_number(best_frames, "best_frames", 1, 20) if (best_frames or "").strip()
        else video.DEFAULT_BEST_FRAMES,
        fusion=(fusion or "").strip() or probes.DEFAULT_FUSION, per_photo=flag(per_photo, "per_photo"))


def track_choice(value: str) -> int | str | None:
    """The track picker's field: empty (one searchable track expected), 'largest', or a track number from 1."""
    text = (value or "").strip()
    if not text or text == "largest":
        return text or None
    return whole_number(text, "track", 1, 1000)


ORDER = ".order"


def store_upload(home: Path, data: bytes, filename: str) -> Path:
    """Keep an uploaded photo under <home>/uploads/<random id>/ until its search is done (see `store_uploads`)."""
    return store_uploads(home, [(data, filename)])[0]


def store_uploads(home: Path, uploads: list[tuple[object, str]]) -> list[Path]:
    """Keep uploaded probe files — (bytes or a readable file, name) each: a photo, several stills or one clip —
    together under <home>/uploads/<random id>/ until the search is done; a face- or track-pick round trip refers
    back to them by that id. The id is random, so no one can name another user's upload. Names are made safe
    and distinct; their order is kept (the first still leads)."""
    uploads = [(data, name) for data, name in uploads if name or (isinstance(data, bytes) and data)]
    if not uploads:
        raise InputError("no probe photo or video was uploaded", "choose a photo, several stills or a video file")
    folder = Path(home) / "uploads" / secrets.token_hex(16)
    folder.mkdir(parents=True, mode=0o700)
    paths: list[Path] = []
    for data, filename in uploads:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename or "probe").name)[:100].lstrip(".") or "probe"
        stem, suffix = Path(name).stem, Path(name).suffix
        taken = {p.name for p in paths}
        count = 1
        while name in taken:  # two stills both called photo.jpg (from different folders)
            count += 1
            name = f"{stem}-{count}{suffix}"
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:  # a spooled upload: copied in blocks, never whole in memory (clips may be hundreds of MiB)
            with open(path, "wb") as out:
                shutil.copyfileobj(data, out, 1 << 20)
        paths.append(path)
    (folder / ORDER).write_text("\n".join(p.name for p in paths), encoding="utf-8")
    return paths


def find_upload(home: Path, upload_id: str) -> Path:
    """The (first) probe file kept by `store_uploads` under `upload_id`, or an InputError."""
    return find_uploads(home, upload_id)[0]


def find_uploads(home: Path, upload_id: str) -> list[Path]:
    """Every probe file kept under `upload_id`, in upload order, or an InputError."""
    if not UPLOAD_ID.fullmatch(upload_id or ""):
        raise InputError("the uploaded photo reference is not valid", "upload the photo again")
    folder = Path(home) / "uploads" / upload_id
    try:
        names = (folder / ORDER).read_text(encoding="utf-8").split("\n")
    except OSError:
        names = sorted(p.name for p in folder.glob("*") if not p.name.startswith("."))
    found = [folder / n for n in names if n and (folder / n).is_file()]
    if not found:
        raise InputError("the uploaded photo is no longer here", "upload the photo again")
    return found


def drop_upload(photo: Path) -> None:
    shutil.rmtree(photo.parent, ignore_errors=True)
