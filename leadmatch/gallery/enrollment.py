"""Enrolling photos into an authorized gallery.

A photo already enrolled (same sha256) is skipped before it is decoded, and so is one another enrollment
recorded meanwhile; each new photo must hold one usable face (or one clearly dominant face; see
`quality.gallery_decision`). Every entry offered (files, links, FIFOs, hidden entries, folders that hold nothing)
ends up counted as enrolled, skipped or refused with its reason: none is dropped. Names that are not valid UTF-8
are recorded exactly, shown with the odd bytes escaped. Only files inside the enrollment's root are read
(`sources`: the service's --enroll-root, else the folder given; never the workspace's own files): a link or
manifest row leading elsewhere is refused as `outside-root`, and audited. The record is written in short
transactions, then the index is brought in step with it.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from leadmatch import safetext
from leadmatch.record import audit
from leadmatch.gallery import index, space as spaces
from leadmatch.gallery.analysis import Analyzer, LocalAnalyzer
from leadmatch.biometrics.models import registry as models
from leadmatch.governance.accounts import Actor, require
from leadmatch.errors import InputError, PhotoError
from leadmatch.gallery.galleries import factory, get as get_gallery
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, display_name, raw_name, sha256_bytes
from leadmatch.gallery.sources import OUTSIDE_ROOT, Confinement
from leadmatch.record.store import embedding_to_blob, transaction, utc_now
from leadmatch.record.workspace import Workspace

CHUNK = 64  # photos per transaction: small enough to lose little on a crash, large enough to be fast


@dataclass
class Item:
    """One photo to enroll: its path, the subject it shows, and extra manifest columns."""

    path: Path
    subject: str
    metadata: dict = field(default_factory=dict)


@dataclass
class Refusal:
    """An entry not enrolled: `path` as shown (odd bytes escaped), `raw_path` its exact bytes if they differ."""

    path: str
    reason: str
    detail: str
    sha256: str | None = None
    raw_path: bytes | None = None

    @classmethod
    def of(cls, path, reason: str, detail: str, sha256: str | None = None) -> "Refusal":
        return cls(display_name(path), reason, detail, sha256, raw_name(path))

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason, "detail": self.detail, "sha256": self.sha256}


@dataclass
class EnrollmentReport:
    """What happened to every photo offered."""

    gallery: str
    enrolled: int = 0
    skipped: int = 0
    refused: list[Refusal] = field(default_factory=list)
    subjects_added: int = 0
    faces_found: int = 0  # detected in the photos decoded this run, refused ones included
    index_note: str | None = None
    workers_refused: list[str] = field(default_factory=list)  # Ray workers left out (other models), by node

    @property
    def offered(self) -> int:
        return self.enrolled + self.skipped + len(self.refused)

    def to_dict(self) -> dict:
        return {"gallery": self.gallery, "offered": self.offered, "enrolled": self.enrolled,
                "skipped_duplicates": self.skipped, "refused": [r.to_dict() for r in self.refused],
                "subjects_added": self.subjects_added, "faces_found": self.faces_found,
                **({"workers_refused": self.workers_refused} if self.workers_refused else {})}


def collect(source: Path) -> tuple[list[Item], list[Refusal]]:
    """Photos to enroll from a folder of `<subject>/<photos>` or a CSV manifest (`path,subject`, more columns
    kept as metadata). Files that cannot be enrolled by their place alone come back as refusals."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _safe_subjects(_from_manifest(source), [])
    if not source.is_dir():
        raise InputError(f"{display_name(source)} is neither a folder nor a .csv manifest",
                         "give a folder of <subject>/<photos> or a CSV with path,subject columns")
    items, refused = [], []
    for path in _listing(source, refused):
        if _set_aside(path, refused):
            continue
        if path.is_dir() and not path.is_symlink():
            _collect_subject(path, display_name(path.name), items, refused)
        else:
            refused.append(Refusal.of(path, "no-subject", "photo is not inside a <subject>/ folder"))
    if not items and not refused:
        raise InputError(f"no photos found in {display_name(source)}", "lay photos out as <folder>/<subject>/<photo>.jpg")
    return _safe_subjects(items, refused)


def _safe_subjects(items: list[Item], refused: list[Refusal]) -> tuple[list[Item], list[Refusal]]:
    """The items whose subject name holds no control, direction or zero-width character; each other one is
    refused (and so counted): such a name would reverse, restyle or forge lines wherever it is printed."""
    kept = []
    for item in items:
        bad = safetext.unsafe_char(item.subject)
        if bad is None:
            kept.append(item)
        else:
            refused.append(Refusal.of(item.path, "unsafe-name", f"subject name {safetext.shown(item.subject)!r} "
                                      f"holds a control or text-direction character ({safetext.shown(bad)}); "
                                      "rename the folder or fix the manifest"))
    return kept, refused


def _listing(folder: Path, refused: list[Refusal]) -> list[Path]:
    """A folder's entries in byte order, or none (and a refusal) if it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            names = sorted((entry.name for entry in entries), key=os.fsencode)
    except OSError as exc:
        refused.append(Refusal.of(folder, "unreadable", f"folder cannot be listed: {exc.strerror}"))
        return []
    return [folder / name for name in names]


def _set_aside(path: Path, refused: list[Refusal]) -> bool:
    """Refuse entries that are not looked into, saying why: hidden ones and links to folders (which could loop
    or lead outside the source)."""
    if path.name.startswith("."):
        refused.append(Refusal.of(path, "hidden", "hidden entry (name starts with '.'); rename it to enroll it"))
        return True
    if path.is_symlink() and path.is_dir():
        refused.append(Refusal.of(path, "linked-folder", "a link to a folder is not followed; give the folder itself"))
        return True
    return False


def _collect_subject(folder: Path, subject: str, items: list[Item], refused: list[Refusal]) -> None:
    """Every entry under one subject's folder (subfolders included): photo types become items; whatever they
    are (a FIFO, a broken link) is decided when they are read."""
    entries = _listing(folder, refused)
    if not entries and not any(r.path == display_name(folder) for r in refused):
        refused.append(Refusal.of(folder, "empty-folder", "folder holds no photos"))
    for path in entries:
        if _set_aside(path, refused):
            continue
        if path.is_dir() and not path.is_symlink():
            _collect_subject(path, subject, items, refused)
        elif path.suffix.lower() in PHOTO_SUFFIXES:
            items.append(Item(path, subject))
        else:
            refused.append(Refusal.of(path, "not-a-photo", f"{display_name(path.suffix) or 'no'} extension is "
                                      "not a photo type"))


def _from_manifest(manifest: Path) -> list[Item]:
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            columns = set(rows[0].keys()) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read manifest {manifest}: {exc}", "give a UTF-8 CSV with path,subject columns") from None
    if not rows:
        raise InputError(f"manifest {manifest} has no rows", "add one row per photo: path,subject")
    if not {"path", "subject"} <= columns:
        raise InputError(f"manifest {manifest} lacks a {'path' if 'path' not in columns else 'subject'} column",
                         "its header must include path,subject")
    items = []
    for number, row in enumerate(rows, start=2):
        if not (row.get("path") or "").strip() or not (row.get("subject") or "").strip():
            raise InputError(f"manifest {manifest} line {number} has an empty path or subject", "fill it in or remove it")
        path = Path(row["path"].strip())
        extra = {k: v for k, v in row.items() if k not in ("path", "subject") and k is not None}
        items.append(Item(path if path.is_absolute() else manifest.parent / path, row["subject"].strip(), extra))
    return items


MAX_NAME_BYTES = 255  # a file or folder name, as most file systems allow


def uploaded_photo_path(folder: Path, name: str) -> Path:
    """Where an uploaded photo named `<subject>/<file>` goes in the enrollment's upload `folder` (its subject's
    folder is made), or an InputError saying what is wrong with the name: no subject, a hidden part, a NUL, or
    a part longer than a file system allows."""
    subject, _, filename = (name or "").rpartition("/")
    shown = safetext.shown(name)
    if not subject or not filename or subject.startswith(".") or "/" in subject or filename.startswith("."):
        raise InputError(f"upload {shown!r} is not named <subject>/<file>",
                         "name each uploaded photo after its subject's folder")
    if "\0" in name:
        raise InputError(f"upload {shown!r} holds a NUL character", "rename the file")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in (subject, filename)):
        raise InputError(f"upload {shown[:80]!r}… has a name longer than {MAX_NAME_BYTES} bytes",
                         f"shorten the subject folder and file names to {MAX_NAME_BYTES} bytes each")
    (Path(folder) / subject).mkdir(exist_ok=True)
    return Path(folder) / subject / filename


def upload_description(names: list[str], shown: int = 5) -> str:
    """What the audit calls an uploaded enrollment: the count and the first file names as uploaded."""
    listed = ", ".join(names[:shown]) + (", …" if len(names) > shown else "")
    return f"upload of {len(names)} photo{'s' if len(names) != 1 else ''}: {listed}"


def _analyzer(ws: Workspace, actor: Actor, gallery, workers: int, ray: str | None, batch: int | None) -> Analyzer:
    """The local pool, or with `ray` (auto or HOST:PORT) a Ray actor pool; Ray is imported only then."""
    if not ray:
        return LocalAnalyzer(workers, CHUNK, gallery.model)
    from leadmatch.gallery.ray_cluster import RayAnalyzer, check_address

    def refuse_worker(where: str, problem: str) -> None:  # a worker with other models is left out, audited
        audit.record(ws.conn, actor.name, "gallery.enroll-worker", "refused", objects={
            "gallery": gallery.name, "worker": where}, reason=f"worker-model: {problem}")

    check_address(ray)  # a malformed option is bad input, not a refused run
    try:
        return RayAnalyzer(ray, batch=batch, workers=workers, refuse_worker=refuse_worker, model=gallery.model)
    except InputError as exc:  # no cluster answers, it refused our token, or no worker started: audited
        audit.record(ws.conn, actor.name, "gallery.enroll", "refused", objects={"gallery": gallery.name, "ray": ray},
                     reason=f"ray-unavailable: {exc.message}")
        exc.reason = "ray-unavailable"  # crosses the wire, so a service can say whom to ask
        raise


def enroll(ws: Workspace, actor: Actor, gallery_name: str, source: Path, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None, ray: str | None = None,
           batch: int | None = None, root: Path | None = None, source_name: str | None = None) -> EnrollmentReport:
    """Analyst: enroll every photo under `source`. `progress(done, total)` is called as photos finish.
    With `ray` (auto or HOST:PORT) the photos are analyzed on that Ray cluster, `batch` photos a task, at most
    `workers` actors (default: one per cluster CPU); the record is written here, as locally. Only files inside
    `root` (the service's --enroll-root; default: the folder `source`) are read (see `sources`): any other entry
    is refused as outside-root, and the run's such refusals audited. `source_name` is what the audit calls the
    source (an upload's file names, not the folder they wait in)."""
    source_name = source_name or display_name(source)
    require(ws, actor, "analyst", "gallery.enroll", objects={"gallery": gallery_name, "source": source_name})
    gallery = get_gallery(ws, gallery_name)
    if gallery.model == spaces.FUSED:
        models.faceres_onnx_path()  # FaceRes absent or altered: say so (exit 5) before reading any photo
    confinement = Confinement.of(source, root, ws.home)
    items, refused = collect(source)
    report = EnrollmentReport(gallery=gallery.name, refused=list(refused))
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1)) if not ray else workers
    seen: set[str] = set()  # photos already offered in this run
    total, done = len(items) + len(refused), len(refused)
    if progress:
        progress(done, total)
    analyzer = _analyzer(ws, actor, gallery, workers, ray, batch)
    report.workers_refused = list(getattr(analyzer, "refused_workers", []))

    def batches():  # read and hash on this process, in order; the analyzer runs the jobs
        for chunk in _chunks(items, analyzer.chunk_size(len(items))):
            jobs, pending, read, unreadable = [], [], [], []
            for item in chunk:
                try:
                    data = confinement.read(item.path)
                except PhotoError as exc:
                    unreadable.append(Refusal.of(item.path, exc.reason, exc.message))
                    continue
                read.append((item, sha256_bytes(data), data))
            # asked per chunk (an indexed lookup), so a 10M-photo gallery's hashes are never all held in memory,
            # and a photo another enrollment recorded meanwhile is a skip
            known = _enrolled_meanwhile(ws, gallery.id, [digest for _, digest, _ in read])
            for item, digest, data in read:
                if digest in known or digest in seen:
                    report.skipped += 1
                    continue
                seen.add(digest)
                jobs.append((data, display_name(item.path)))
                pending.append((item, digest, data))
            yield (len(chunk), pending, unreadable), jobs

    try:
        for (count, pending, unreadable), results in analyzer.stream(batches()):
            report.refused.extend(unreadable)
            refused.extend(unreadable)  # recorded with the layout refusals at the end
            _write(ws, actor.name, gallery, pending, results, report)
            done += count
            if progress:
                progress(done, total)
    finally:
        analyzer.close()
    _record_refusals(ws, gallery.id, refused)
    _audit_outside(ws, actor, gallery.name, source, confinement, report.refused)
    _, report.index_note = index.sync(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    audit.record(ws.conn, actor.name, "gallery.enroll", objects={
        "gallery": gallery.name, "source": source_name, "enrolled": report.enrolled, "skipped": report.skipped,
        "refused": len(report.refused), **({"ray": ray} if ray else {})},  # which cluster analyzed them
        photos=[r.sha256 for r in report.refused if r.sha256])
    return report


def _audit_outside(ws: Workspace, actor: Actor, gallery: str, source: Path, confinement: Confinement,
                   refused: list[Refusal]) -> None:
    """One refused entry in the audit for the run's entries outside its root (each is also in the summary and
    the record's refusals); the first 100 paths are named."""
    outside = [r.path for r in refused if r.reason == OUTSIDE_ROOT]
    if outside:
        audit.record(ws.conn, actor.name, "gallery.enroll", "refused", objects={
            "gallery": gallery, "source": display_name(source), "outside_root": len(outside), "paths": outside[:100],
            "root": display_name(confinement.root) if confinement.root else None},
            reason=f"{OUTSIDE_ROOT}: {len(outside)} entries lie outside the enrollment root or in the workspace")


def _enrolled_meanwhile(ws: Workspace, gallery_id: int, digests: list[str]) -> set[str]:
    """Which of `digests` the gallery holds now (another enrollment may have recorded them since we looked)."""
    found: set[str] = set()
    for start in range(0, len(digests), 500):
        part = digests[start:start + 500]
        found.update(r[0] for r in ws.conn.execute(
            f"SELECT sha256 FROM photos WHERE gallery_id = ? AND sha256 IN ({','.join('?' * len(part))})",
            (gallery_id, *part)))
    return found


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _write(ws: Workspace, actor: str, gallery, pending: list, results: list[dict], report: EnrollmentReport) -> None:
    """Store one chunk's outcomes in a single transaction. A photo another enrollment recorded while this one
    decoded it is a skip; photo files this chunk stored go again if the transaction fails."""
    conn, now, enrolled_hashes, new_refusals, skipped, new_files = ws.conn, utc_now(), [], [], 0, []
    try:
        with transaction(conn):
            for (item, digest, data), result in zip(pending, results):
                report.faces_found += result.get("faces", 0)
                if "refused" in result:
                    reason, detail = result["refused"]
                    new_refusals.append(Refusal.of(item.path, reason, detail, digest))
                elif conn.execute("SELECT 1 FROM photos WHERE gallery_id = ? AND sha256 = ?",
                                  (gallery.id, digest)).fetchone():
                    skipped += 1
                else:
                    _insert_photo(ws, actor, gallery, item, digest, data, result, now, report, new_files)
                    enrolled_hashes.append(digest)
            _record_refusals(ws, gallery.id, new_refusals)
            if enrolled_hashes:
                audit.record(conn, actor, "gallery.enroll-photos", objects={"gallery": gallery.name,
                                                                            "photos": len(enrolled_hashes)},
                             photos=enrolled_hashes)
    except BaseException:
        for path in new_files:  # unless another enrollment recorded the same photo meanwhile
            ws.release_photo(str(path.relative_to(ws.home)))
        raise
    report.enrolled += len(enrolled_hashes)
    report.skipped += skipped
    report.refused.extend(new_refusals)


def _insert_photo(ws: Workspace, actor: str, gallery, item: Item, digest: str, data: bytes, result: dict, now: str,
                  report: EnrollmentReport, new_files: list[Path]) -> None:
    """One enrolled photo: its file kept under its hash, its photo and face rows with the face's quality flags
    (inside the caller's transaction). Files newly written are added to `new_files`; a file already kept (the
    same photo in another gallery, or searched as a probe) is shared."""
    conn, face = ws.conn, result["face"]
    subject_id = _subject_id(conn, gallery.id, item.subject, now, report)
    suffix = item.path.suffix.lower() if item.path.suffix.lower() in PHOTO_SUFFIXES else ""
    target = ws.photos / digest[:2] / (digest + suffix)
    existed = target.exists()
    stored = ws.store_photo(data, digest, suffix)
    if not existed:
        new_files.append(stored)
    photo_id = conn.execute(
        "INSERT INTO photos (gallery_id, subject_id, sha256, source_path, source_path_raw, stored_path, "
        "metadata, enrolled_at, enrolled_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (gallery.id, subject_id, digest, display_name(item.path), raw_name(item.path),
         str(stored.relative_to(ws.home)), json.dumps(item.metadata, ensure_ascii=False), now,
         actor)).lastrowid
    top, right, bottom, left = face.box
    conn.execute(
        "INSERT INTO faces (gallery_id, subject_id, photo_id, box_top, box_right, box_bottom, box_left, size_px, "
        "eye_distance_px, sharpness, detector_score, embedding, quality_flags, faceres) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (gallery.id, subject_id, photo_id, top, right, bottom, left, face.size_px, face.eye_distance_px,
         face.sharpness, face.detector_score, embedding_to_blob(face.embedding),
         json.dumps(result.get("flags", [])),
         None if result.get("faceres") is None else embedding_to_blob(result["faceres"])))


def _subject_id(conn, gallery_id: int, name: str, now: str, report: EnrollmentReport) -> int:
    row = conn.execute("SELECT id FROM subjects WHERE gallery_id = ? AND name = ?", (gallery_id, name)).fetchone()
    if row:
        return row[0]
    report.subjects_added += 1
    return conn.execute("INSERT INTO subjects (gallery_id, name, created_at) VALUES (?, ?, ?)",
                        (gallery_id, name, now)).lastrowid


def _record_refusals(ws: Workspace, gallery_id: int, refusals: list[Refusal]) -> None:
    """Record refusals, one row per entry and reason: a refusal seen again (a re-run, or another enrollment of
    the same folder) updates its row with the latest detail and hash."""
    if not refusals:
        return
    now = utc_now()
    with transaction(ws.conn):
        ws.conn.executemany(
            "INSERT INTO enrollment_refusals (gallery_id, source_path, source_path_raw, sha256, reason, detail, "
            "refused_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gallery_id, source_path, reason) DO UPDATE SET "
            "sha256 = excluded.sha256, detail = excluded.detail, source_path_raw = excluded.source_path_raw",
            [(gallery_id, r.path, r.raw_path, r.sha256, r.reason, r.detail, now) for r in refusals])
