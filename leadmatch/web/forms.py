"""Form and query fields as the library wants them, or one clear message naming the field.

Browsers send text; a field that is not what it should be becomes an InputError (400 with the field's
name), never a 500 or FastAPI's 422. An error names the request field it concerns (`LeadmatchError.field`); the
new-search form marks that field and words the message as the page does (`wording.page_error`), without the CLI's
option names. Uploads wait under <home>/uploads/<random id>/ for a retry or a pick, with the progress of a
clip's analysis (`write_progress`, `read_progress`) and the analysis itself (`search.video.keep_analysis`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from leadmatch.errors import InputError
from leadmatch.search import leads, probes, video
from leadmatch.search.run import SearchRequest

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def whole_number(value: str, field: str, low: int | None = None, high: int | None = None,
                 concerns: str | None = None) -> int:
    """`value` as an int within [low, high], or an InputError naming `field` (and concerning the request field
    `concerns`, `field` itself unless told)."""
    text = (value or "").strip()
    span = f" from {low} to {high}" if low is not None and high is not None else ""
    if not re.fullmatch(r"[+-]?\d{1,9}", text):
        raise InputError(f"{field} {text!r} is not a whole number", f"give a whole number{span}",
                         field=concerns or field)
    number = int(text)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InputError(f"{field} {number} is out of range", f"give a whole number{span}", field=concerns or field)
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
        raise InputError(f"{field} {text!r} is not a number", f"give a number from {low:g} to {high:g}", field=field)
    number = float(text)
    if not low <= number <= high:
        raise InputError(f"{field} {number:g} is out of range", f"give a number from {low:g} to {high:g}",
                         field=field)
    return number


def flag(value: str, field: str) -> bool:
    """A checkbox or API flag: empty/false/0/off → False, true/1/on → True."""
    text = (value or "").strip().lower()
    if text in ("", "false", "0", "off", "no"):
        return False
    if text in ("true", "1", "on", "yes"):
        return True
    raise InputError(f"{field} {value!r} is not true or false", "send true or false", field=field)


def search_request(*, gallery: str, case: str, purpose: str, justification: str, traditional_means: str,
                   probe_source: str, top_k: str, face: str, detector: str = "hog", track: str = "", every: str = "",
                   best_frames: str = "", fusion: str = "", per_photo: str = "",
                   top_k_field: str = "top_k") -> SearchRequest:
    """A SearchRequest from form text (the probe files are filled in after upload); each field checked here
    with a message naming it, the policy fields by the library."""
    return SearchRequest(
        probe=Path(), gallery=gallery, case=case, purpose=purpose, justification=justification,
        traditional_means=traditional_means, probe_source=probe_source or "original",
        top_k=whole_number(top_k, top_k_field, 2, 50, "top_k") if (top_k or "").strip() else leads.DEFAULT_CANDIDATES,
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
        raise InputError("no probe photo or video was uploaded", "choose a photo, several stills or a video file",
                         field="probe")
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
        raise InputError("the uploaded photo reference is not valid", "upload the photo again", field="probe")
    folder = Path(home) / "uploads" / upload_id
    try:
        names = (folder / ORDER).read_text(encoding="utf-8").split("\n")
    except OSError:
        names = sorted(p.name for p in folder.glob("*") if not p.name.startswith("."))
    found = [folder / n for n in names if n and (folder / n).is_file()]
    if not found:
        raise InputError("the uploaded photo is no longer here", "upload the photo again", field="probe")
    return found


def drop_upload(photo: Path) -> None:
    """Delete a kept upload: its files, the progress and the analysis kept with them."""
    shutil.rmtree(photo.parent, ignore_errors=True)


def upload_id(path: Path) -> str:
    """The id a kept upload is known by in a form (its folder's name)."""
    return Path(path).parent.name


# A clip's analysis, as the page follows it -------------------------------------------------------------------

PROGRESS = ".progress"
PROGRESS_EVERY_S = 0.25  # how often the analysis rewrites its progress file (the page polls about as often)


class ProgressFile:
    """A search's `progress(seconds_done, duration_s)` that leaves the latest in <upload folder>/.progress
    (owner-only, replaced whole), where the page's progress endpoint reads it. Plain data: made in the worker."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / PROGRESS
        self.last = 0.0

    def __call__(self, done_s: float, duration_s: float) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and done_s < duration_s:
            return
        self.last = now
        write_progress(self.path.parent, {"state": "analysing", "done_s": round(done_s, 2),
                                          "duration_s": round(duration_s, 2)})


def write_progress(folder: Path, state: dict) -> None:
    """Replace the progress file of the upload in `folder` (a missing folder — the search is over — is fine)."""
    target = Path(folder) / PROGRESS
    temp = target.with_name(f"{PROGRESS}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(state, out)
        os.replace(temp, target)
    except OSError:
        temp.unlink(missing_ok=True)


def read_progress(home: Path, upload: str) -> dict:
    """Where the search of upload `upload` stands: {"state": "waiting"} before its clip is decoded,
    {"state": "analysing", "done_s", "duration_s"} meanwhile, {"state": "gone"} once the upload is gone (the
    search finished or failed); an InputError for an id that cannot be one."""
    if not UPLOAD_ID.fullmatch(upload or ""):
        raise InputError("the uploaded photo reference is not valid", "upload the photo again", field="probe")
    folder = Path(home) / "uploads" / upload
    try:
        state = json.loads((folder / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"state": "waiting" if folder.is_dir() else "gone"}
    return state if isinstance(state, dict) else {"state": "waiting"}


# Errors in the page's words ------------------------------------------------------------------------------------

#: The new-search form's fields (request field → the label the page shows).
SEARCH_LABELS = {
    "probe": "Probe", "gallery": "Gallery", "case": "Case number", "purpose": "Authorized purpose",
    "justification": "Justification", "traditional_means": "Traditional means", "probe_source": "Probe source",
    "original": "Original photo", "enhancement": "What was done to it", "top_k": "Candidates", "face": "Face",
    "track": "Track", "every": "Sample a frame every", "best_frames": "Best frames", "fusion": "Fusion",
    "per_photo": "One candidate per gallery photo",
}
