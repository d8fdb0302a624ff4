"""Searching a probe photo against an authorized gallery: a ranked list of lead-only candidates.

Every attempt is audited; a refused one says which rule stopped it. The index proposes the nearest faces; the
distances reported are recomputed exactly from the embeddings in the record, whatever the index type.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import audit, calibration, index, leads, purposes, quality
from .accounts import Actor, require, require_search_ready
from .casework import AWAITING_DISPOSITION, can_read, workflow
from .errors import FaceChoiceNeeded, InputError, LeadmatchError, NotFound, PhotoError, Refused
from .faces import DETECTORS, Analysis, Face
from .gallery import Gallery, factory, get as get_gallery
from .photos import read_bytes, sha256_bytes
from .store import transaction, utc_now
from .workspace import Workspace


PROBE_SOURCES = ("original", "cropped", "enhanced", "composite", "sketch")
REFUSED_SOURCES = ("composite", "sketch")
MIN_JUSTIFICATION = (15, 3)        # characters, words
MIN_TRADITIONAL_MEANS = (30, 5)


@dataclass
class SearchRequest:
    """What the agent asks for. `face` is a 1-based face number, "largest", or None (must be one face)."""

    probe: Path
    gallery: str
    case: str
    purpose: str = ""
    justification: str = ""
    traditional_means: str = ""
    probe_source: str = "original"
    top_k: int = leads.DEFAULT_CANDIDATES
    face: int | str | None = None
    detector: str = "hog"
    threshold: float | None = None  # None: the gallery's calibrated threshold
    details: dict = field(default_factory=dict)


def new_search_id() -> str:
    """A readable, unguessable id: S-<UTC date>-<8 hex>."""
    return f"S-{datetime.now(timezone.utc):%Y%m%d}-{secrets.token_hex(4)}"


def _substantive(text: str, minimum: tuple[int, int]) -> bool:
    text = (text or "").strip()
    return len(text) >= minimum[0] and len(text.split()) >= minimum[1]


def validate(ws: Workspace, request: SearchRequest) -> None:
    """Check the policy preconditions and options that need no photo."""
    if not (request.case or "").strip():
        raise Refused("no case number given", "pass --case with the case this search serves", "missing-case")
    if not (request.purpose or "").strip():
        raise Refused("no purpose given", "pass --purpose with an authorized purpose (see `leadmatch purposes`)",
                      "missing-purpose")
    if not purposes.is_authorized(ws, request.purpose):
        raise Refused(f"purpose {request.purpose!r} is not an authorized purpose",
                      "pick one from `leadmatch purposes`; an admin may add one", "unauthorized-purpose")
    if not _substantive(request.justification, MIN_JUSTIFICATION):
        raise Refused("--justification is empty or too short",
                      f"explain why this search is needed (at least {MIN_JUSTIFICATION[1]} words)",
                      "missing-justification")
    if not _substantive(request.traditional_means, MIN_TRADITIONAL_MEANS):
        raise Refused("--traditional-means is empty or too short",
                      f"record what traditional investigative steps were tried and why they did not identify the "
                      f"person (at least {MIN_TRADITIONAL_MEANS[1]} words)", "missing-traditional-means")
    if request.probe_source not in PROBE_SOURCES:
        raise InputError(f"--probe-source {request.probe_source!r} is not known", f"use one of: {', '.join(PROBE_SOURCES)}")
    if request.probe_source in REFUSED_SOURCES:
        raise Refused(f"a {request.probe_source} cannot be searched", "composites, sketches and artist renderings "
                      "are not photographs of a person; use a photo", "composite-probe")
    if not leads.MIN_CANDIDATES <= request.top_k <= leads.MAX_CANDIDATES:
        raise InputError(f"--top-k {request.top_k} is out of range",
                         f"ask for {leads.MIN_CANDIDATES} to {leads.MAX_CANDIDATES} candidates")
    if request.detector not in DETECTORS:
        raise InputError(f"unknown detector {request.detector!r}", "use hog or cnn")
    if request.threshold is not None and not 0.0 < request.threshold < 2.0:
        raise InputError(f"threshold {request.threshold} is out of range", "use a distance between 0 and 2")


def pick_face(found: Analysis, choice: int | str | None, probe_name: str) -> Face:
    """The face the agent chose; several faces and no choice → FaceChoiceNeeded listing them."""
    if not found.faces:
        raise PhotoError(f"no face found in {probe_name}",
                         f"use a photo with a face at least {quality.PROBE_DETECT_STEPS[-1]} px wide", reason="no-face")
    if choice is None:
        if len(found.faces) == 1:
            return found.faces[0]
        raise FaceChoiceNeeded(f"{probe_name} holds {len(found.faces)} faces",
                               "pick one with --face N (numbered left to right) or --face largest",
                               [f.summary() for f in found.faces])
    if choice == "largest":
        return max(found.faces, key=lambda f: f.size_px)
    if isinstance(choice, int) and 1 <= choice <= len(found.faces):
        return found.faces[choice - 1]
    raise InputError(f"--face {choice} does not exist: {probe_name} holds {len(found.faces)} face(s)",
                     f"pick 1 to {len(found.faces)} or largest")


def run(ws: Workspace, actor: Actor, request: SearchRequest) -> dict:
    """Agent: run and record one search; return it as `show` would. Any refusal is audited, then raised."""
    case = (request.case or "").strip() or None
    require(ws, actor, "agent", "search", case=case, objects={"gallery": request.gallery})
    require_search_ready(ws, actor, case)
    probe_hash: list[str] = []
    try:
        validate(ws, request)
        gallery = get_gallery(ws, request.gallery)
        data = read_bytes(request.probe)
        probe_hash.append(sha256_bytes(data))
        found = quality.detect_in_steps(data, str(request.probe), quality.PROBE_DETECT_STEPS, request.detector)
        face = pick_face(found, request.face, str(request.probe))
        shortfalls = quality.PROBE.shortfalls(face)
        if shortfalls:
            raise Refused(f"probe face {face.index} is below the minimum quality: {'; '.join(shortfalls)}",
                          "use a larger or sharper photo of the face", "low-quality-probe")
        return _record(ws, actor, request, gallery, data, found, face)
    except LeadmatchError as exc:
        audit.record(ws.conn, actor.name, "search", "refused", case=case,
                     objects={"gallery": request.gallery, "probe": str(request.probe),
                              **({"faces": exc.faces} if isinstance(exc, FaceChoiceNeeded) else {})},
                     reason=f"{getattr(exc, 'reason', 'bad-input')}: {exc.message}", photos=probe_hash)
        raise


def _record(ws: Workspace, actor: Actor, request: SearchRequest, gallery: Gallery, data: bytes,
            found: Analysis, face: Face) -> dict:
    loaded = index.load(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    if loaded.index.ntotal == 0:
        raise InputError(f"gallery {gallery.name!r} has no enrolled faces", f"enroll photos with `gallery enroll {gallery.name}`")
    calibrated = calibration.load(ws.conn, gallery.id) or calibration.refresh(ws.conn, gallery.id, loaded.index)
    threshold = request.threshold if request.threshold is not None else calibrated.threshold
    candidates = rank_candidates(ws, loaded.index, face.embedding, request.top_k, threshold, calibrated)
    flags = [f"low-quality: {w}" for w in quality.PROBE.warnings(face)]
    if request.probe_source == "enhanced":
        flags.append("enhanced probe: edited or enhanced before search")
    search_id, now = new_search_id(), utc_now()
    stored = ws.store_photo(data, found.sha256, Path(request.probe).suffix)
    details = {**request.details, "detector": request.detector}
    if loaded.repaired:
        details["index_repaired"] = loaded.repaired
    with transaction(ws.conn):
        ws.conn.execute(
            "INSERT INTO searches (id, case_number, gallery_id, agent, created_at, probe_sha256, probe_name, "
            "probe_stored_path, faces_in_probe, face_index, box, quality, flags, top_k, threshold, index_type, details, "
            "purpose, justification, traditional_means, probe_source, status, calibration) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (search_id, request.case.strip(), gallery.id, actor.name, now, found.sha256, Path(request.probe).name,
             str(stored.relative_to(ws.home)), len(found.faces), face.index, json.dumps(list(face.box)),
             json.dumps(face.quality()), json.dumps(flags), request.top_k, threshold, loaded.factory,
             json.dumps(details, ensure_ascii=False), request.purpose.strip().lower(), request.justification.strip(),
             request.traditional_means.strip(), request.probe_source, AWAITING_DISPOSITION,
             json.dumps(calibrated.summary() | {"resolution": calibrated.resolution()})))
        ws.conn.executemany(
            "INSERT INTO candidates (search_id, rank, face_id, subject, photo_sha256, image, box, distance, score, "
            "within_threshold, false_alarm_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            # score: the retired linear 0-100 display scale; the column stays for older records, written as 0.
            [(search_id, c["rank"], c["face_id"], c["subject"], c["photo_sha256"], c["image"], json.dumps(c["box"]),
              c["distance"], 0.0, int(c["within_threshold"]), c["false_alarm_rate"]) for c in candidates])
        audit.record(ws.conn, actor.name, "search", case=request.case.strip(), search_id=search_id,
                     objects={"gallery": gallery.name, "face": face.index, "purpose": request.purpose.strip().lower(), "candidates": len(candidates),
                              "within_threshold": sum(c["within_threshold"] for c in candidates),
                              **({"index_repaired": loaded.repaired} if loaded.repaired else {})},
                     photos=[found.sha256] + [c["photo_sha256"] for c in candidates])
    return _view(ws, search_id)


def rank_candidates(ws: Workspace, faiss_index, embedding: np.ndarray, top_k: int, threshold: float,
                    calibrated: calibration.Calibration | None = None) -> list[dict]:
    """Nearest faces from the index, with exact distances from the record, ranked from 1, each with the
    estimated false-alarm rate at its distance (from `calibrated`) and the gallery face's quality flags.
    An approximate index proposes twice as many, and the exact distances choose."""
    proposals = top_k if index.is_exact(faiss_index) else top_k * index.RERANK_FACTOR
    ids, _ = index.search(faiss_index, embedding, proposals)
    if len(ids) == 0:
        return []
    rows = ws.conn.execute(
        "SELECT f.id, f.embedding, f.box_top, f.box_right, f.box_bottom, f.box_left, f.quality_flags, "
        "s.name AS subject, p.sha256, p.source_path FROM faces f JOIN subjects s ON s.id = f.subject_id JOIN photos p ON p.id = f.photo_id "
        f"WHERE f.id IN ({','.join('?' * len(ids))})", [int(i) for i in ids]).fetchall()
    scored = []
    for row in rows:
        distance = float(np.linalg.norm(np.frombuffer(row["embedding"], dtype="<f4") - embedding))
        scored.append((distance, row))
    scored.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    scored = scored[:top_k]
    return [{"rank": rank, "subject": row["subject"], "face_id": row["id"], "image": row["source_path"],
             "photo_sha256": row["sha256"],
             "box": [row["box_top"], row["box_right"], row["box_bottom"], row["box_left"]],
             "gallery_flags": json.loads(row["quality_flags"] or "[]"),
             **leads.candidate_fields(distance, threshold,
                                      calibrated.fpir_at(distance) if calibrated else None,
                                      calibrated.describe_rate(distance) if calibrated else None)}
            for rank, (distance, row) in enumerate(scored, start=1)]


def show(ws: Workspace, actor: Actor, search_id: str) -> dict:
    """A recorded search as its reader may see it (agents: their own; reviewers, auditors, admins: all)."""
    row = ws.conn.execute("SELECT id, case_number, agent FROM searches WHERE id = ?", (search_id,)).fetchone()
    if row is None:
        raise NotFound(f"no search {search_id!r}", "see `leadmatch searches`")
    can_read(ws, actor, row)
    audit.record(ws.conn, actor.name, "search.read", case=row["case_number"], search_id=search_id)
    return _view(ws, search_id)


def _view(ws: Workspace, search_id: str) -> dict:
    """A recorded search with its candidates (each labelled lead-only), dispositions and closure."""
    row = ws.conn.execute("SELECT s.*, g.name AS gallery FROM searches s JOIN galleries g ON g.id = s.gallery_id "
                          "WHERE s.id = ?", (search_id,)).fetchone()
    if row is None:
        raise NotFound(f"no search {search_id!r}", "see `leadmatch searches`")
    flow = workflow(ws, search_id)
    calibrated = json.loads(row["calibration"]) if row["calibration"] else None
    flags_of = {r[0]: json.loads(r[1] or "[]") for r in ws.conn.execute(
        "SELECT f.id, f.quality_flags FROM faces f JOIN candidates c ON c.face_id = f.id WHERE c.search_id = ?",
        (search_id,))}
    candidates = [
        {"rank": c["rank"], "subject": c["subject"], "face_id": c["face_id"], "image": c["image"],
         "photo_sha256": c["photo_sha256"], "box": json.loads(c["box"]), "gallery_flags": flags_of.get(c["face_id"], []),
         **leads.candidate_fields(c["distance"], row["threshold"], c["false_alarm_rate"],
                                  _rate_text(c["false_alarm_rate"], calibrated)),
         "disposition": flow["dispositions"].get(c["rank"]),
         "corroboration": [e for e in flow["corroborations"] if e["rank"] == c["rank"]]}
        for c in ws.conn.execute("SELECT * FROM candidates WHERE search_id = ? ORDER BY rank", (search_id,))]
    return {
        "search_id": row["id"],
        "notice": leads.NOTICE,
        "status": row["status"],
        "case": row["case_number"],
        "purpose": row["purpose"],
        "justification": row["justification"],
        "traditional_means": row["traditional_means"],
        "probe_source": row["probe_source"],
        "gallery": row["gallery"],
        "agent": row["agent"],
        "created_at": row["created_at"],
        "purged_at": row["purged_at"],
        "threshold": row["threshold"],
        "calibration": calibrated,
        "index": row["index_type"],
        "flags": json.loads(row["flags"]),
        "probe": {"name": row["probe_name"], "sha256": row["probe_sha256"], "face_index": row["face_index"],
                  "faces_in_photo": row["faces_in_probe"], "box": json.loads(row["box"]),
                  "quality": json.loads(row["quality"])},
        "details": json.loads(row["details"]),
        "candidates": candidates,
        "closure": flow["closure"],
        "history": flow["history"],
    }


def _rate_text(rate: float | None, calibrated: dict | None) -> str | None:
    """A stored candidate's estimated false-alarm rate as every output shows it ('3 %', 'under 0.1 %')."""
    if rate is None or not calibrated:
        return None
    if rate == 0:
        return f"under {calibration.percent(calibrated['resolution'])}"
    return calibration.percent(rate)
