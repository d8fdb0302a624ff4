"""Adding photos and clips to a case: each file kept under its sha256 in the workspace (the source folder is
only read), every face found and embedded with the case's model, clips as face tracks (search/video.py), and
the faces then grouped into persons (persons.py).

The agent names a case, an authorized purpose and a justification, as for a search; certification and accepted
rules are checked; every add, refusal and file is audited. Photos are analyzed on the enrollment's process pool
(or a Ray cluster, `ray`), clips one per pool worker; the record is written here, one transaction per batch.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from leadmatch.biometrics import quality
from leadmatch.biometrics.faces import analyze, prepare as prepare_descriptor
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, decode, display_name, read_bytes, sha256_bytes
from leadmatch.errors import InputError, PhotoError
from leadmatch.governance import policy, purposes
from leadmatch.record import audit
from leadmatch.casemedia import persons
from leadmatch.casemedia.cases import case_model, may_read
from leadmatch.governance import retention
from leadmatch.governance.accounts import Actor, refuse, require, require_search_ready
from leadmatch.record.store import embedding_to_blob, transaction, utc_now
from leadmatch.record.workspace import Workspace
from leadmatch.search import video

#: Clips are sampled every 0.2 s (a probe: 0.1 s): a person on screen for a second is still seen five times, and
#: an hour of footage costs half as much.
MEDIA_EVERY_S = 0.2
#: A case clip may run this long (a probe clip: 10 minutes): seized footage comes as it was recorded.
MEDIA_MAX_DURATION_S = 4 * 3600.0
#: A clip of case media is batch work, not a search waiting on an answer: its whole length at the slowest
#: sampling may be analysed, for as long as that takes (a probe's budget is `video.Budget()`).
MEDIA_BUDGET = video.Budget(max_frames=int(MEDIA_MAX_DURATION_S / 0.04) + 1, max_seconds=24 * 3600.0)
#: Best frames kept per track: the appearances shown and searched with.
KEEP_PER_TRACK = 5
PHOTOS_PER_TASK = 8
MIN_JUSTIFICATION = (15, 3)  # as a search's


@dataclass
class MediaRequest:
    """What the agent asks for: files or folders to add to `case`, for `purpose`, because `justification`."""

    case: str
    paths: list[Path]
    purpose: str = ""
    justification: str = ""
    every_s: float = MEDIA_EVERY_S
    workers: int | None = None
    ray: str | None = None
    batch: int | None = None


@dataclass
class MediaReport:
    """What happened to every file offered."""

    case: str
    added: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # already in the case (same sha256)
    refused: list[dict] = field(default_factory=list)
    faces: int = 0
    tracks: int = 0
    persons: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"case": self.case, "added": self.added, "skipped": self.skipped, "refused": self.refused,
                "faces": self.faces, "tracks": self.tracks, "persons": self.persons}


def _substantive(text: str, minimum: tuple[int, int]) -> bool:
    text = (text or "").strip()
    return len(text) >= minimum[0] and len(text.split()) >= minimum[1]


def check_request(ws: Workspace, actor: Actor, request: MediaRequest) -> str:
    """Agent, certified, rules accepted; case, authorized purpose, justification; the policy allows case media
    (and clips, if any). Every refusal audited. Returns the case number."""
    case = (request.case or "").strip()
    require(ws, actor, "agent", "media.add", case=case or None)
    require_search_ready(ws, actor, case or None)
    context = {"case": case or None, "objects": {"files": [display_name(p) for p in request.paths][:20]}}
    if not case:
        raise refuse(ws, actor, "media.add", "missing-case", "no case number given",
                     "pass the case these media belong to", **context)
    current = policy.get(ws)
    if not current.case_media:
        raise policy.refused(ws, actor, "media.add", "case_media", "case media are switched off in this deployment",
                             **context)
    if not current.video_probes and any(video.is_video(p) or Path(p).is_dir() and _has_clip(Path(p))
                                        for p in request.paths):
        raise policy.refused(ws, actor, "media.add", "video_probes",
                             "video is switched off in this deployment: clips cannot be added", **context)
    if not purposes.is_authorized(ws, request.purpose):
        raise refuse(ws, actor, "media.add", "unauthorized-purpose",
                     f"purpose {request.purpose!r} is not an authorized purpose",
                     "pick one from `leadmatch purposes`; an admin may add one", **context)
    if not _substantive(request.justification, MIN_JUSTIFICATION):
        raise refuse(ws, actor, "media.add", "missing-justification", "--justification is empty or too short",
                     f"explain why these media are analyzed (at least {MIN_JUSTIFICATION[1]} words)", **context)
    if not request.paths:
        raise InputError("no files given", "name the photos, clips or folders to add")
    if not 0.04 <= request.every_s <= 10:
        raise InputError(f"--every {request.every_s:g} s is out of range", "sample between every 0.04 and 10 seconds")
    return case


def _has_clip(folder: Path) -> bool:
    return any(video.is_video(p) for p in folder.rglob("*") if p.is_file())


def collect(paths: list[Path]) -> tuple[list[Path], list[dict]]:
    """Files to add (photos and clips, folders walked in name order) and refusals for what cannot be added."""
    files, refused = [], []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for inner in sorted(path.rglob("*"), key=lambda p: os.fsencode(str(p))):
                if any(part.startswith(".") for part in inner.relative_to(path).parts):
                    continue  # hidden entries are not evidence the agent chose
                if inner.is_file():
                    _sort(inner, files, refused)
        elif path.exists():
            _sort(path, files, refused)
        else:
            refused.append({"file": display_name(path), "reason": "not-found", "detail": "no such file or folder"})
    return files, refused


def _sort(path: Path, files: list[Path], refused: list[dict]) -> None:
    if path.suffix.lower() in PHOTO_SUFFIXES or video.is_video(path):
        files.append(path)
    else:
        refused.append({"file": display_name(path), "reason": "not-media",
                        "detail": f"{path.suffix or 'no'} extension is not a photo or video type"})


# Workers ---------------------------------------------------------------------------------------------------

def analyze_photos(jobs: list[tuple[bytes, str]]) -> list[dict]:
    """Worker (pool or Ray): photos' bytes → for each, every face found (at the probe scales, so the faces a
    search could use are the faces listed) with whether it passes the probe quality floor, or a refusal."""
    out = []
    for data, name in jobs:
        try:
            photo = decode(data, name=name)
        except PhotoError as exc:
            out.append({"refused": (exc.reason, exc.message)})
            continue
        found = None
        for min_face_px in quality.probe_steps(photo.width, photo.height):
            found = analyze(photo, min_face_px=min_face_px)
            if found.faces:
                break
        out.append({"width": photo.width, "height": photo.height,
                    "faces": [(face, not quality.PROBE.shortfalls(face)) for face in found.faces]})
    return out


def analyze_clip(job: tuple[str, str, float]) -> dict:
    """Worker: one stored clip (path, display name, sampling step) → its tracks, each with its best frames
    (JPEG), or a refusal."""
    path, name, every_s = job
    try:
        found = video.analyze_video(Path(path), every_s=every_s, min_face_px=quality.PROBE_DETECT_MIN_PX,
                                    keep=KEEP_PER_TRACK, max_duration_s=MEDIA_MAX_DURATION_S, budget=MEDIA_BUDGET)
    except PhotoError as exc:
        return {"refused": (exc.reason, exc.message.replace(display_name(Path(path)), name))}
    tracks = [{"track": t.number, "first_s": t.first_s, "last_s": t.last_s, "frames_seen": t.frames_seen,
               "best": [(o.time_s, o.face, o.frontalness, o.quality_score, o.jpeg,
                         not quality.PROBE.shortfalls(o.face)) for o in t.best if o.jpeg]} for t in found.tracks]
    return {"tracks": tracks, "info": {"duration_s": round(found.duration_s, 2), "fps": round(found.fps, 3),
                                       "size": [found.width, found.height], "every_s": every_s,
                                       "frames_sampled": found.frames_sampled, "cuts": found.cuts}}


def _pool(workers: int):
    prepare_descriptor()  # a bad model file stops the run here, once, before any fork
    return multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None


# Adding ----------------------------------------------------------------------------------------------------

def add(ws: Workspace, actor: Actor, request: MediaRequest,
        progress: Callable[[int, int], None] | None = None) -> dict:
    """Agent: add photos and clips to a case, find and embed every face, group them into persons. Returns the
    report (added, skipped, refused, faces, tracks, persons). `progress(done, total)` as files finish."""
    case = check_request(ws, actor, request)
    files, refused_layout = collect(request.paths)
    report = MediaReport(case=case, refused=list(refused_layout))
    model = case_model(ws, case)
    total, done = len(files) + len(refused_layout), len(refused_layout)
    if progress:
        progress(done, total)
    photos, clips = [], []
    for path in files:
        try:
            kept = _keep(ws, path)
        except PhotoError as exc:
            report.refused.append({"file": display_name(path), "reason": exc.reason, "detail": exc.message})
            done += 1
            continue
        if ws.conn.execute("SELECT 1 FROM case_media WHERE case_number = ? AND sha256 = ? AND purged_at IS NULL",
                           (case, kept["sha256"])).fetchone() or any(
                k["sha256"] == kept["sha256"] for k in photos + clips):
            report.skipped.append(kept["name"])
            done += 1
            continue
        (clips if kept["kind"] == "video" else photos).append(kept)
    if progress:
        progress(done, total)
    workers = max(1, request.workers or os.cpu_count() or 1)
    try:
        for kept, result in _analyzed(ws, actor, case, photos, clips, request, workers):
            _write(ws, actor, case, model, request, kept, result, report)
            done += 1
            if progress:
                progress(done, total)
    finally:
        _release_unrecorded(ws, photos + clips)
    report.persons = persons.group(ws, actor, case)
    audit.record(ws.conn, actor.name, "media.add", case=case, objects={
        "added": len(report.added), "skipped": len(report.skipped), "refused": len(report.refused),
        "faces": report.faces, "tracks": report.tracks, "model": model, "purpose": request.purpose.strip().lower(),
        **({"ray": request.ray} if request.ray else {})},
        photos=[m["sha256"] for m in report.added])
    return report.to_dict()


def _keep(ws: Workspace, path: Path) -> dict:
    """Copy one file into the workspace under its sha256 (temp file, then rename; the source is only read)."""
    name = display_name(path)
    suffix = Path(path).suffix.lower()
    if video.is_video(path):
        size = video.check_file(Path(path))
        digest, temp = hashlib.sha256(), ws.photos / f".incoming.{os.getpid()}.{os.urandom(4).hex()}"
        ws.photos.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as source, open(temp, "wb") as target:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                target.write(block)
        sha = digest.hexdigest()
        final = ws.photos / sha[:2] / (sha + suffix)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            temp.unlink()
        else:
            os.replace(temp, final)
        return {"kind": "video", "name": name, "sha256": sha, "bytes": size, "path": final,
                "stored_path": str(final.relative_to(ws.home))}
    data = read_bytes(path)
    sha = sha256_bytes(data)
    existed = (ws.photos / sha[:2] / (sha + suffix)).exists()
    stored = ws.store_photo(data, sha, suffix)
    return {"kind": "photo", "name": name, "sha256": sha, "bytes": len(data), "data": data, "path": stored,
            "stored_path": str(stored.relative_to(ws.home)), "new_file": not existed}


def _analyzed(ws: Workspace, actor: Actor, case: str, photos: list[dict], clips: list[dict],
              request: MediaRequest, workers: int):
    """(kept file, result) for every photo and clip, photos in batches on the pool or Ray, clips on the pool."""
    batches = [photos[i:i + PHOTOS_PER_TASK] for i in range(0, len(photos), PHOTOS_PER_TASK)]
    if request.ray and photos:
        from leadmatch.gallery.ray_cluster import RayAnalyzer, check_address

        check_address(request.ray)
        try:
            analyzer = RayAnalyzer(request.ray, batch=request.batch, workers=request.workers,
                                   work="leadmatch.casemedia.media:analyze_photos")
        except InputError as exc:
            audit.record(ws.conn, actor.name, "media.add", "refused", case=case, objects={"ray": request.ray},
                         reason=f"ray-unavailable: {exc.message}")
            exc.reason = "ray-unavailable"
            raise
        try:
            stream = ((batch, [(k["data"], k["name"]) for k in batch]) for batch in batches)
            for batch, results in analyzer.stream(stream):
                for kept, result in zip(batch, results):
                    yield kept, ({"refused": result["refused"]} if "refused" in result and "faces" not in result
                                 else result)
        finally:
            analyzer.close()
        photos, batches = [], []
    pool = _pool(workers) if (photos or clips) else None
    try:
        jobs = [[(k["data"], k["name"]) for k in batch] for batch in batches]
        mapped = pool.imap(analyze_photos, jobs) if pool else map(analyze_photos, jobs)
        for batch, results in zip(batches, mapped):
            yield from zip(batch, results)
        clip_jobs = [(str(k["path"]), k["name"], request.every_s) for k in clips]
        mapped = pool.imap(analyze_clip, clip_jobs) if pool else map(analyze_clip, clip_jobs)
        yield from zip(clips, mapped)
    finally:
        if pool:
            pool.close()
            pool.join()


def _write(ws: Workspace, actor: Actor, case: str, model: str, request: MediaRequest, kept: dict, result: dict,
           report: MediaReport) -> None:
    """One file's media row and face rows, in one transaction; a refusal is reported (and its copy released)."""
    if "refused" in result or "error" in result:
        reason, detail = result.get("refused") or ("analysis-failed", result["error"])
        report.refused.append({"file": kept["name"], "reason": reason, "detail": detail, "sha256": kept["sha256"]})
        return
    now = utc_now()
    with transaction(ws.conn):
        details = result.get("info") or {"size": [result["width"], result["height"]]}
        # a file purged from the case earlier and added again takes its old row back (one row per case and hash)
        ws.conn.execute(
            "INSERT INTO case_media (case_number, sha256, kind, name, stored_path, bytes, model, purpose, "
            "justification, details, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (case_number, sha256) DO UPDATE SET name = excluded.name, stored_path = "
            "excluded.stored_path, model = excluded.model, purpose = excluded.purpose, justification = "
            "excluded.justification, details = excluded.details, added_at = excluded.added_at, added_by = "
            "excluded.added_by, purged_at = NULL",
            (case, kept["sha256"], kept["kind"], kept["name"], kept["stored_path"], kept["bytes"], model,
             request.purpose.strip().lower(), request.justification.strip(), json.dumps(details), now,
             actor.name))
        media_id = ws.conn.execute("SELECT id FROM case_media WHERE case_number = ? AND sha256 = ?",
                                   (case, kept["sha256"])).fetchone()[0]
        faces = 0
        if kept["kind"] == "photo":
            for face, usable in result["faces"]:
                _insert_face(ws, case, media_id, face, usable, kept["sha256"], kept["stored_path"],
                             quality_score=_photo_quality(face), details={"faces_in_image": len(result["faces"])})
                faces += 1
        else:
            for track in result["tracks"]:
                span = {"track_span_s": [round(track["first_s"], 2), round(track["last_s"], 2)],
                        "frames_seen": track["frames_seen"]}
                for time_s, face, frontal, score, jpeg, usable in track["best"]:
                    digest = sha256_bytes(jpeg)
                    frame = ws.store_photo(jpeg, digest, ".jpg")
                    _insert_face(ws, case, media_id, face, usable, digest, str(frame.relative_to(ws.home)),
                                 quality_score=score, track=track["track"], time_s=time_s,
                                 details={**span, "frontalness": round(frontal, 2)})
                    faces += 1
            report.tracks += len(result["tracks"])
        audit.record(ws.conn, actor.name, "media.file", case=case,
                     objects={"file": kept["name"], "kind": kept["kind"], "faces": faces, "model": model},
                     photos=[kept["sha256"]])
    kept["recorded"] = True
    report.faces += faces
    report.added.append({"file": kept["name"], "kind": kept["kind"], "sha256": kept["sha256"], "faces": faces,
                         **({"tracks": len(result["tracks"])} if kept["kind"] == "video" else {})})


def _photo_quality(face) -> float:
    """0–1 ranking of a photo face against a track frame, on the same scale as video.Observation.quality_score
    (frontalness taken as 1: a still's pose is not measured)."""
    return (min(1.0, face.size_px / 100.0) * min(1.0, face.eye_distance_px / 40.0) * min(1.0, face.sharpness / 100.0))


def _insert_face(ws: Workspace, case: str, media_id: int, face, usable: bool, image_sha256: str, image_path: str,
                 quality_score: float, track: int | None = None, time_s: float | None = None,
                 details: dict | None = None) -> None:
    ws.conn.execute(
        "INSERT INTO case_faces (media_id, case_number, track, time_s, face_index, box, quality, quality_score, "
        "usable, image_sha256, image_path, details, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (media_id, case, track, None if time_s is None else round(time_s, 3), face.index, json.dumps(list(face.box)),
         json.dumps(face.quality()), round(float(quality_score), 4), int(bool(usable)), image_sha256, image_path,
         json.dumps(details or {}), embedding_to_blob(face.embedding)))


def _release_unrecorded(ws: Workspace, kept: list[dict]) -> None:
    """Copies of files that were refused or never recorded (a failure, Ctrl-C) go again, unless used elsewhere."""
    for item in kept:
        if not item.get("recorded"):
            ws.release_photo(item["stored_path"])


#: A case never searched keeps its media this long after the last add (as long as a gallery's default retention).
UNSEARCHED_RETENTION_DAYS = 365


def expired_cases(ws: Workspace, now: datetime | None = None, purging: list[str] | tuple = ()) -> list[str]:
    """Cases whose media are due for purge: every search of the case purged under the retention rules (or about
    to be: the ids in `purging`, for a preview), or no search ever and the last media added more than
    UNSEARCHED_RETENTION_DAYS ago."""
    now = now or datetime.now(timezone.utc)
    cutoff = (now - timedelta(days=UNSEARCHED_RETENTION_DAYS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [r[0] for r in ws.conn.execute(
        "SELECT m.case_number FROM case_media m WHERE m.purged_at IS NULL GROUP BY m.case_number HAVING "
        "(EXISTS (SELECT 1 FROM searches s WHERE s.case_number = m.case_number) AND NOT EXISTS (SELECT 1 FROM "
        "searches s WHERE s.case_number = m.case_number AND s.purged_at IS NULL AND s.id NOT IN (SELECT value "
        "FROM json_each(?)))) OR (NOT EXISTS (SELECT 1 FROM "
        "searches s WHERE s.case_number = m.case_number) AND max(m.added_at) < ?)", (json.dumps(list(purging)),
                                                                                     cutoff))]


def purge_expired(ws: Workspace, actor: Actor) -> dict:
    """Admin: `purge --expired` — the searches past retention (governance.retention), then the media of the
    cases that leaves expired. Returns both results in one dict."""
    return {**retention.purge_expired(ws, actor), **purge_expired_media(ws, actor)}


def purge_preview(ws: Workspace, actor: Actor, now: datetime | None = None) -> dict:
    """Admin: what `purge_expired` would purge now — the searches past retention and the media of the cases that
    leaves expired, counted — with nothing deleted; the preview itself is audited (`purge.preview`)."""
    require(ws, actor, "admin", "purge.preview")
    searches = retention.preview(ws, now)
    cases = []
    for case in expired_cases(ws, now, [s["search_id"] for s in searches]):
        files, faces = ws.conn.execute(
            "SELECT (SELECT count(*) FROM case_media WHERE case_number = ? AND purged_at IS NULL), "
            "(SELECT count(*) FROM case_faces WHERE case_number = ?)", (case, case)).fetchone()
        cases.append({"case": case, "media_files": files, "faces": faces})
    audit.record(ws.conn, actor.name, "purge.preview", objects={
        "searches": [s["search_id"] for s in searches], "cases": [c["case"] for c in cases]})
    return {"searches": searches, "cases": cases, "probe_files": sum(s["probe_files"] for s in searches),
            "media_files": sum(c["media_files"] for c in cases)}


def purge_expired_media(ws: Workspace, actor: Actor, now: datetime | None = None) -> dict:
    """Admin: purge the media of expired cases — faces and embeddings deleted, stored files released, the media
    rows kept with their sha256 and purged_at so the audit trail still points somewhere. Audited."""
    require(ws, actor, "admin", "purge")
    cases = expired_cases(ws, now)
    files = []
    stamp = utc_now()
    with transaction(ws.conn):
        for case in cases:
            files += [r[0] for r in ws.conn.execute(
                "SELECT stored_path FROM case_media WHERE case_number = ? AND purged_at IS NULL UNION "
                "SELECT image_path FROM case_faces WHERE case_number = ?", (case, case)) if r[0]]
            hashes = [r[0] for r in ws.conn.execute(
                "SELECT sha256 FROM case_media WHERE case_number = ? AND purged_at IS NULL", (case,))]
            ws.conn.execute("DELETE FROM case_faces WHERE case_number = ?", (case,))
            ws.conn.execute("UPDATE case_media SET purged_at = ?, stored_path = NULL, justification = '', "
                            "details = '{}' WHERE case_number = ? AND purged_at IS NULL", (stamp, case))
            ws.conn.execute("UPDATE case_persons SET dropped_at = coalesce(dropped_at, ?), dropped_by = "
                            "coalesce(dropped_by, ?), drop_reason = coalesce(drop_reason, 'purged under retention') "
                            "WHERE case_number = ?", (stamp, actor.name, case))
            audit.record(ws.conn, actor.name, "media.purge", case=case, objects={"files": len(hashes)},
                         photos=hashes)
    removed = sum(ws.release_photo(path) for path in dict.fromkeys(files))  # after the commit, as searches do
    return {"purged_cases": cases, "media_files_removed": removed}


def listing(ws: Workspace, actor: Actor, case: str) -> list[dict]:
    """The case's media (agents who worked on the case, reviewers, auditors, admins), oldest first."""
    may_read(ws, actor, case, "media.list")
    return [{"file": r["name"], "kind": r["kind"], "sha256": r["sha256"], "bytes": r["bytes"], "model": r["model"],
             "added_at": r["added_at"], "added_by": r["added_by"], "purged_at": r["purged_at"],
             "details": json.loads(r["details"]), "faces": r["faces"]}
            for r in ws.conn.execute(
                "SELECT m.*, (SELECT count(*) FROM case_faces f WHERE f.media_id = m.id) AS faces FROM case_media m "
                "WHERE m.case_number = ? ORDER BY m.id", (case,))]


__all__ = ["MediaRequest", "MediaReport", "add", "listing", "purge_expired", "analyze_photos", "analyze_clip"]
