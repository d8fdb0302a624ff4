"""Enrolling photos into an authorized gallery.

A photo already enrolled (same sha256) is skipped before it is decoded; each new photo must hold one usable face
(or one clearly dominant face; see `quality.gallery_decision`). Every photo ends up counted as enrolled, skipped or refused with its reason: none is
dropped. The record is written in short transactions, then the index is brought in step with it.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import audit, index, quality
from .accounts import Actor, require
from .errors import InputError, PhotoError
from .gallery import factory, get as get_gallery
from .photos import PHOTO_SUFFIXES, read_bytes, sha256_bytes
from .store import embedding_to_blob, transaction, utc_now
from .workspace import Workspace

CHUNK = 64  # photos per transaction: small enough to lose little on a crash, large enough to be fast


@dataclass
class Item:
    """One photo to enroll: its path, the subject it shows, and extra manifest columns."""

    path: Path
    subject: str
    metadata: dict = field(default_factory=dict)


@dataclass
class Refusal:
    path: str
    reason: str
    detail: str
    sha256: str | None = None


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

    @property
    def offered(self) -> int:
        return self.enrolled + self.skipped + len(self.refused)

    def to_dict(self) -> dict:
        return {"gallery": self.gallery, "offered": self.offered, "enrolled": self.enrolled,
                "skipped_duplicates": self.skipped, "refused": [r.__dict__ for r in self.refused],
                "subjects_added": self.subjects_added, "faces_found": self.faces_found}


def collect(source: Path) -> tuple[list[Item], list[Refusal]]:
    """Photos to enroll from a folder of `<subject>/<photos>` or a CSV manifest (`path,subject`, more columns
    kept as metadata). Files that cannot be enrolled by their place alone come back as refusals."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _from_manifest(source), []
    if not source.is_dir():
        raise InputError(f"{source} is neither a folder nor a .csv manifest",
                         "give a folder of <subject>/<photos> or a CSV with path,subject columns")
    items, refused = [], []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            refused.append(Refusal(str(entry), "no-subject", "photo is not inside a <subject>/ folder"))
            continue
        for path in sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() in PHOTO_SUFFIXES:
                items.append(Item(path, entry.name))
            else:
                refused.append(Refusal(str(path), "not-a-photo", f"{path.suffix or 'no'} extension is not a photo type"))
    if not items and not refused:
        raise InputError(f"no photos found in {source}", "lay photos out as <folder>/<subject>/<photo>.jpg")
    return items, refused


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


def _analyze(job: tuple[bytes, str]) -> dict:
    """Worker: one photo's bytes → the face to enroll with its quality flags, or a refusal (plain data, so it
    crosses processes). No face at the gallery detection scale: looked for again at the probe scales, since a
    smaller face is still better than losing the subject from every search."""
    data, name = job
    try:
        found = quality.detect_in_steps(data, name, quality.GALLERY_DETECT_STEPS)
    except PhotoError as exc:
        return {"refused": (exc.reason, exc.message)}
    face, flags, refusal = quality.gallery_decision(found.faces, found.width, found.height)
    if refusal:
        reason, detail = refusal
        if reason == "no-face":
            detail = f"no face of at least {quality.GALLERY_DETECT_STEPS[-1]} px found"
        return {"refused": (reason, detail), "faces": len(found.faces)}
    return {"face": face, "flags": flags, "faces": len(found.faces)}


def _pool(workers: int):
    if workers <= 1:
        return None
    return multiprocessing.get_context("fork").Pool(workers)


def enroll(ws: Workspace, actor: Actor, gallery_name: str, source: Path, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> EnrollmentReport:
    """Analyst: enroll every photo under `source`. `progress(done, total)` is called as photos finish."""
    require(ws, actor, "analyst", "gallery.enroll", objects={"gallery": gallery_name, "source": str(source)})
    gallery = get_gallery(ws, gallery_name)
    items, refused = collect(source)
    report = EnrollmentReport(gallery=gallery.name, refused=list(refused))
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    known = {r[0] for r in ws.conn.execute("SELECT sha256 FROM photos WHERE gallery_id = ?", (gallery.id,))}
    total, done = len(items) + len(refused), len(refused)
    if progress:
        progress(done, total)
    pool = _pool(workers)
    try:
        for chunk in _chunks(items, CHUNK * max(1, workers) if pool else CHUNK):
            jobs, pending = [], []
            for item in chunk:
                try:
                    data = read_bytes(item.path)
                except PhotoError as exc:
                    refusal = Refusal(str(item.path), exc.reason, exc.message)
                    report.refused.append(refusal)
                    refused.append(refusal)  # recorded with the layout refusals at the end
                    continue
                digest = sha256_bytes(data)
                if digest in known:
                    report.skipped += 1
                    continue
                known.add(digest)
                jobs.append((data, str(item.path)))
                pending.append((item, digest, data))
            results = pool.map(_analyze, jobs, chunksize=4) if pool else [_analyze(j) for j in jobs]
            _write(ws, actor.name, gallery, pending, results, report)
            done += len(chunk)
            if progress:
                progress(done, total)
    finally:
        if pool:
            pool.close()
            pool.join()
    _record_refusals(ws, gallery.id, refused)
    _, report.index_note = index.sync(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    audit.record(ws.conn, actor.name, "gallery.enroll", objects={
        "gallery": gallery.name, "source": str(source), "enrolled": report.enrolled, "skipped": report.skipped,
        "refused": len(report.refused)}, photos=[r.sha256 for r in report.refused if r.sha256])
    return report


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _write(ws: Workspace, actor: str, gallery, pending: list, results: list[dict], report: EnrollmentReport) -> None:
    """Store one chunk's outcomes in a single transaction."""
    conn, now, enrolled_hashes, new_refusals = ws.conn, utc_now(), [], []
    with transaction(conn):
        for (item, digest, data), result in zip(pending, results):
            report.faces_found += result.get("faces", 0)
            if "refused" in result:
                reason, detail = result["refused"]
                new_refusals.append(Refusal(str(item.path), reason, detail, digest))
                continue
            face = result["face"]
            subject_id = _subject_id(conn, gallery.id, item.subject, now, report)
            stored = ws.store_photo(data, digest, item.path.suffix)
            photo_id = conn.execute(
                "INSERT INTO photos (gallery_id, subject_id, sha256, source_path, stored_path, metadata, enrolled_at, "
                "enrolled_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (gallery.id, subject_id, digest, str(item.path), str(stored.relative_to(ws.home)),
                 json.dumps(item.metadata, ensure_ascii=False), now, actor)).lastrowid
            top, right, bottom, left = face.box
            conn.execute(
                "INSERT INTO faces (gallery_id, subject_id, photo_id, box_top, box_right, box_bottom, box_left, size_px, "
                "eye_distance_px, sharpness, detector_score, embedding, quality_flags) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (gallery.id, subject_id, photo_id, top, right, bottom, left, face.size_px, face.eye_distance_px,
                 face.sharpness, face.detector_score, embedding_to_blob(face.embedding),
                 json.dumps(result.get("flags", []))))
            enrolled_hashes.append(digest)
        _record_refusals(ws, gallery.id, new_refusals)
        if enrolled_hashes:
            audit.record(conn, actor, "gallery.enroll-photos", objects={"gallery": gallery.name,
                                                                        "photos": len(enrolled_hashes)},
                         photos=enrolled_hashes)
    report.enrolled += len(enrolled_hashes)
    report.refused.extend(new_refusals)


def _subject_id(conn, gallery_id: int, name: str, now: str, report: EnrollmentReport) -> int:
    row = conn.execute("SELECT id FROM subjects WHERE gallery_id = ? AND name = ?", (gallery_id, name)).fetchone()
    if row:
        return row[0]
    report.subjects_added += 1
    return conn.execute("INSERT INTO subjects (gallery_id, name, created_at) VALUES (?, ?, ?)",
                        (gallery_id, name, now)).lastrowid


def _record_refusals(ws: Workspace, gallery_id: int, refusals: list[Refusal]) -> None:
    if not refusals:
        return
    now = utc_now()
    with transaction(ws.conn):
        ws.conn.executemany(
            "INSERT INTO enrollment_refusals (gallery_id, source_path, sha256, reason, detail, refused_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", [(gallery_id, r.path, r.sha256, r.reason, r.detail, now) for r in refusals])
