"""Authorized galleries: created with their legal authority before anything is enrolled; subjects removed
from the record and the index at once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date

from leadmatch import safetext
from leadmatch.record import audit
from leadmatch.gallery import calibration, index, space as spaces
from leadmatch.governance.accounts import Actor, require
from leadmatch.biometrics.models import registry as models
from leadmatch.errors import InputError, ModelError, NotFound, Refused
from leadmatch.record.workspace import Workspace
from leadmatch.record.dates import parse_date
from leadmatch.record.store import transaction, utc_now

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
#: Names a gallery cannot take because a front end's address for something else has that form (the web's
#: form for a new gallery is /galleries/new): every front end must reach every gallery.
RESERVED_NAMES = frozenset({"new"})
DEFAULT_RETENTION_DAYS = 365


@dataclass
class Gallery:
    id: int
    name: str
    authority: str
    approved_by: str
    approved_on: str
    source: str
    retention_days: int
    index_factory: str | None
    created_at: str
    created_by: str
    target_fpir: float | None = None  # None: calibration.DEFAULT_TARGET_FPIR
    model: str = spaces.DEFAULT_MODEL  # the face model: dlib, or dlib+faceres (issue 23)


def factory(ws: Workspace, gallery: Gallery) -> str:
    """The index type in force: the gallery's own choice, else its last build's, else the default for its size."""
    return index.factory_for(ws.conn, gallery.id, gallery.index_factory)


def create(ws: Workspace, actor: Actor, name: str, authority: str, approved_by: str, approved_on: str,
           source: str, retention_days: int = DEFAULT_RETENTION_DAYS, model: str | None = None) -> Gallery:
    """Analyst: record a new authorized gallery. Every authorization field is required and non-blank; `model`
    is the face model its faces are embedded and searched with (None: the workspace's default, dlib unless
    its owner chose otherwise at `init --model`)."""
    require(ws, actor, "analyst", "gallery.create", objects={"gallery": name})
    fields = {"authority": authority, "approved-by": approved_by, "source": source}
    missing = [k for k, v in fields.items() if not (v or "").strip()]
    try:
        if not NAME_PATTERN.match(name or ""):
            raise InputError(f"gallery name {name!r} is not allowed",
                             "use letters, digits, space, '.', '_' or '-' (up to 100)")
        if name.strip().lower() in RESERVED_NAMES:
            raise InputError(f"gallery name {name!r} is reserved", "choose another name")
        if missing:
            raise Refused(f"gallery {name!r} lacks its authorization: {', '.join('--' + m for m in missing)} "
                          f"is empty", "give the legal authority, approving official and source",
                          "unauthorized-gallery")
        safetext.check_name(approved_by, "--approved-by")
        safetext.check_text(authority, "--authority")
        safetext.check_text(source, "--source")
        approved = parse_date(approved_on, "--approved-on")
        if approved > date.today().isoformat():
            raise InputError(f"--approved-on {approved} is in the future", "give the date the gallery was approved")
        if retention_days < 1:
            raise InputError(f"--retention-days {retention_days} must be at least 1", "give the retention period in days")
        model = spaces.validate(model or spaces.default_model(ws.conn))
        if model == spaces.FUSED:
            models.faceres_onnx_path()  # absent or altered FaceRes weights: one line, exit 5
        with transaction(ws.conn):
            if ws.conn.execute("SELECT 1 FROM galleries WHERE name = ?", (name,)).fetchone():
                raise InputError(f"gallery {name!r} already exists", "choose another name, or enroll into it")
            cursor = ws.conn.execute(
                "INSERT INTO galleries (name, authority, approved_by, approved_on, source, retention_days, "
                "created_at, created_by, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, authority.strip(), approved_by.strip(), approved, source.strip(), retention_days, utc_now(),
                 actor.name, model))
            audit.record(ws.conn, actor.name, "gallery.create", objects={"gallery": name, "gallery_id": cursor.lastrowid,
                                                                    "authority": authority.strip(), "model": model})
    except (InputError, Refused, ModelError) as exc:
        audit.record(ws.conn, actor.name, "gallery.create", "refused", objects={"gallery": name},
                     reason=f"{getattr(exc, 'reason', 'model-unavailable' if isinstance(exc, ModelError) else 'bad-input')}: "
                            f"{exc.message}")
        raise
    return get(ws, name)


def get(ws: Workspace, name: str) -> Gallery:
    row = ws.conn.execute("SELECT * FROM galleries WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no gallery named {name!r}", "see `leadmatch gallery list`, or create it with `gallery create`")
    return Gallery(**dict(row))


READERS = ("analyst", "agent", "reviewer", "auditor", "admin")
#: Who may see a gallery's details (counts, refusals, index file): agents and reviewers see only the names.
DETAIL_READERS = ("analyst", "auditor", "admin")


def list_all(ws: Workspace, actor: Actor) -> list[dict]:
    """Every gallery by name (any signed-in role may look): with its authorization, counts and index for
    analysts, auditors and admins; only the name for agents and reviewers, who need no more to search."""
    held = require(ws, actor, READERS, "gallery.list")
    rows = [Gallery(**dict(r)) for r in ws.conn.execute("SELECT * FROM galleries ORDER BY name")]
    if not held.roles.intersection(DETAIL_READERS):
        return [{"name": g.name} for g in rows]
    return [describe(ws, g) for g in rows]


def describe(ws: Workspace, gallery: Gallery) -> dict:
    """A gallery's authorization, counts and index, as shown by `gallery show`."""
    conn = ws.conn
    count = lambda sql: conn.execute(sql, (gallery.id,)).fetchone()[0]  # noqa: E731
    path = index.index_path(ws.indexes, gallery.id)
    refusals = {r[0]: r[1] for r in conn.execute(
        "SELECT reason, count(*) FROM enrollment_refusals WHERE gallery_id = ? GROUP BY reason ORDER BY reason",
        (gallery.id,))}
    return {
        "name": gallery.name,
        "authorization": {"authority": gallery.authority, "approved_by": gallery.approved_by,
                          "approved_on": gallery.approved_on, "source": gallery.source,
                          "retention_days": gallery.retention_days},
        "created_at": gallery.created_at,
        "created_by": gallery.created_by,
        "model": gallery.model,
        "subjects": count("SELECT count(*) FROM subjects WHERE gallery_id = ?"),
        "photos": count("SELECT count(*) FROM photos WHERE gallery_id = ?"),
        "faces": count("SELECT count(*) FROM faces WHERE gallery_id = ?"),
        "refused_photos": sum(refusals.values()),
        "refused_by_reason": refusals,
        "index": {"type": factory(ws, gallery), "file": str(path),
                  "bytes": path.stat().st_size if path.exists() else 0},
        "flagged_faces": count("SELECT count(*) FROM faces WHERE gallery_id = ? AND quality_flags != '[]'"),
        "calibration": _calibration_summary(ws, gallery),
    }


def _calibration_summary(ws: Workspace, gallery: Gallery) -> dict | None:
    stored = calibration.load(ws.conn, gallery.id)
    return stored.summary() if stored else None


#: An admin may aim the calibrated threshold at a false-alarm rate from 0.1 % to 20 % of searches for absent people.
TARGET_FPIR_RANGE = (0.001, 0.2)


def set_target_fpir(ws: Workspace, actor: Actor, name: str, target: float) -> dict:
    """Admin: set the gallery's target FPIR (the share of searches for someone not enrolled allowed a rank-1
    within threshold), recalibrate its threshold, and audit the change. Returns the new calibration summary."""
    require(ws, actor, "admin", "gallery.target-fpir", objects={"gallery": name, "target_fpir": target})
    try:
        gallery = get(ws, name)
        low, high = TARGET_FPIR_RANGE
        if not low <= target <= high:
            raise InputError(f"--target-fpir {target:g} is out of range",
                             f"give a fraction from {low:g} to {high:g} (0.01 is 1 % of searches)")
    except (InputError, NotFound) as exc:
        audit.record(ws.conn, actor.name, "gallery.target-fpir", "refused",
                     objects={"gallery": name, "target_fpir": target}, reason=f"bad-input: {exc.message}")
        raise
    before = gallery.target_fpir if gallery.target_fpir is not None else calibration.DEFAULT_TARGET_FPIR
    with transaction(ws.conn):
        ws.conn.execute("UPDATE galleries SET target_fpir = ? WHERE id = ?", (target, gallery.id))
    loaded = index.load(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    with transaction(ws.conn):
        result = calibration.refresh(ws.conn, gallery.id, loaded.index).summary()
        audit.record(ws.conn, actor.name, "gallery.target-fpir", objects={
            "gallery": gallery.name, "target_fpir": target, "previous": before, "threshold": result["threshold"]})
    return result


def show(ws: Workspace, actor: Actor, name: str, with_refusals: bool = False) -> dict:
    """A gallery's description (analyst, auditor or admin), with every refused photo if asked."""
    require(ws, actor, DETAIL_READERS, "gallery.show", objects={"gallery": name})
    gallery = get(ws, name)
    info = describe(ws, gallery)
    if with_refusals:
        info["refusals"] = refusals(ws, gallery)
    return info


def refusals(ws: Workspace, gallery: Gallery) -> list[dict]:
    """Photos refused at enrollment, oldest first."""
    return [dict(r) for r in ws.conn.execute(
        "SELECT source_path, sha256, reason, detail, refused_at FROM enrollment_refusals WHERE gallery_id = ? "
        "ORDER BY id", (gallery.id,))]


#: Subjects shown on one page of `subjects` unless asked otherwise, and the most one page may hold.
SUBJECTS_PAGE, SUBJECTS_PAGE_MAX = 50, 1000


def subjects(ws: Workspace, actor: Actor, name: str, contains: str = "", offset: int = 0,
             limit: int = SUBJECTS_PAGE, flagged_only: bool = False) -> dict:
    """A gallery's subjects by name (analyst, auditor or admin): each with its photo and face counts, how many
    faces carry a quality flag and those flags; `contains` filters names (case-insensitive), `offset` and
    `limit` page them, `flagged_only` keeps subjects with a flagged face. Answers {gallery, total (after the
    filter), offset, limit, subjects}."""
    require(ws, actor, DETAIL_READERS, "gallery.subjects", objects={"gallery": name})
    gallery = get(ws, name)
    if offset < 0:
        raise InputError(f"offset {offset} is negative", "give 0 or more")
    if not 1 <= limit <= SUBJECTS_PAGE_MAX:
        raise InputError(f"page size {limit} is out of range", f"give a page size from 1 to {SUBJECTS_PAGE_MAX}")
    typed = (contains or "").strip().lower()
    pattern = "%" + typed.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"  # typed literally
    where = "s.gallery_id = ? AND lower(s.name) LIKE ? ESCAPE '\\'"
    if flagged_only:
        where += " AND EXISTS (SELECT 1 FROM faces f WHERE f.subject_id = s.id AND f.quality_flags != '[]')"
    total = ws.conn.execute(f"SELECT count(*) FROM subjects s WHERE {where}", (gallery.id, pattern)).fetchone()[0]
    rows = ws.conn.execute(
        f"SELECT s.id, s.name, s.created_at, (SELECT count(*) FROM photos p WHERE p.subject_id = s.id) AS photos, "
        f"(SELECT count(*) FROM faces f WHERE f.subject_id = s.id) AS faces FROM subjects s WHERE {where} "
        f"ORDER BY s.name LIMIT ? OFFSET ?", (gallery.id, pattern, limit, offset)).fetchall()
    listed = []
    for row in rows:
        flagged = flagged_faces(ws, gallery, row["id"])
        listed.append({"subject": row["name"], "photos": row["photos"], "faces": row["faces"],
                       "flagged_faces": len(flagged), "flags": sorted({f for face in flagged for f in face["flags"]}),
                       "created_at": row["created_at"]})
    return {"gallery": gallery.name, "total": total, "offset": offset, "limit": limit, "subjects": listed}


def flagged_faces(ws: Workspace, gallery: Gallery, subject_id: int | None = None) -> list[dict]:
    """Faces of `gallery` (one subject's, if given) enrolled with a quality flag: subject, photo as enrolled,
    size, eye distance, sharpness and the flags, in enrollment order."""
    sql = ("SELECT f.id, s.name AS subject, p.source_path, f.size_px, f.eye_distance_px, f.sharpness, "
           "f.quality_flags FROM faces f JOIN subjects s ON s.id = f.subject_id JOIN photos p ON p.id = f.photo_id "
           "WHERE f.gallery_id = ? AND f.quality_flags != '[]'")
    args: tuple = (gallery.id,)
    if subject_id is not None:
        sql, args = sql + " AND f.subject_id = ?", (gallery.id, subject_id)
    return [{"face": r["id"], "subject": r["subject"], "photo": r["source_path"], "size_px": r["size_px"],
             "eye_distance_px": round(r["eye_distance_px"], 1), "sharpness": round(r["sharpness"], 1),
             "flags": json.loads(r["quality_flags"])} for r in ws.conn.execute(sql + " ORDER BY f.id", args)]


def flagged(ws: Workspace, actor: Actor, name: str) -> list[dict]:
    """Every quality-flagged face of a gallery (analyst, auditor or admin), in enrollment order."""
    require(ws, actor, DETAIL_READERS, "gallery.flagged", objects={"gallery": name})
    return flagged_faces(ws, get(ws, name))


def remove_subject(ws: Workspace, actor: Actor, gallery_name: str, subject: str) -> dict:
    """Analyst: delete a subject's photos and faces from the record and from the index, at once."""
    require(ws, actor, "analyst", "gallery.remove-subject", objects={"gallery": gallery_name, "subject": subject})
    gallery = get(ws, gallery_name)
    row = ws.conn.execute("SELECT id FROM subjects WHERE gallery_id = ? AND name = ?",
                          (gallery.id, subject)).fetchone()
    if row is None:
        raise NotFound(f"no subject {subject!r} in gallery {gallery_name!r}",
                       f"see `leadmatch gallery show {gallery_name}`")
    photos = ws.conn.execute("SELECT sha256, stored_path FROM photos WHERE subject_id = ?", (row["id"],)).fetchall()
    with transaction(ws.conn):
        faces = ws.conn.execute("DELETE FROM faces WHERE subject_id = ?", (row["id"],)).rowcount
        ws.conn.execute("DELETE FROM photos WHERE subject_id = ?", (row["id"],))
        ws.conn.execute("DELETE FROM subjects WHERE id = ?", (row["id"],))
        audit.record(ws.conn, actor.name, "gallery.remove-subject",
                     objects={"gallery": gallery.name, "subject": subject, "faces": faces},
                     photos=[p["sha256"] for p in photos])
    index.sync(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    for photo in photos:
        ws.release_photo(photo["stored_path"])
    return {"gallery": gallery.name, "subject": subject, "faces_removed": faces, "photos_removed": len(photos)}



def build_index(ws: Workspace, actor: Actor, name: str, factory_string: str | None = None) -> dict:
    """Analyst: retrain the gallery's index from the record (as `factory_string`, which then sticks; else the
    type in force), self-check it against exact search and record the result."""
    require(ws, actor, "analyst", "index.build", objects={"gallery": name, "index": factory_string})
    gallery = get(ws, name)
    dim = spaces.Space(gallery.model).dim  # the width of the gallery's vectors (its face model's)
    if factory_string:  # it becomes the gallery's type only once a build with it succeeds
        factory_string = index.validate_factory(factory_string, dim)
    chosen = factory_string or gallery.index_factory or index.choose_factory(
        index.record_fingerprint(ws.conn, gallery.id)[0], dim)
    result = index.build_gallery(ws.conn, ws.indexes, gallery.id, chosen, keep_factory=bool(factory_string))
    audit.record(ws.conn, actor.name, "index.build", objects={"gallery": name, **result})
    return result


def index_status(ws: Workspace, actor: Actor, name: str) -> dict:
    """Type, size, bytes per face, training, faces added since, last self-check, and whether to rebuild."""
    require(ws, actor, DETAIL_READERS, "index.status", objects={"gallery": name})
    gallery = get(ws, name)
    loaded = index.load(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    info = index.build_info(ws.conn, gallery.id) or {}
    size = index.index_path(ws.indexes, gallery.id).stat().st_size
    faces = loaded.index.ntotal
    added = ws.conn.execute("SELECT count(*) FROM faces WHERE gallery_id = ? AND id > ?",
                            (gallery.id, info.get("built_max_face_id", 0))).fetchone()[0]
    advice = []
    trained = info.get("trained_on", 0)
    if not index.is_exact(loaded.index) and added > max(1, trained) * 0.5:
        advice.append(f"{added} faces added since training on {trained}: clusters have drifted")
    default = index.choose_factory(faces, spaces.Space(gallery.model).dim)
    if not gallery.index_factory and default != factory(ws, gallery):
        advice.append(f"at {faces} faces the default index is {default}")
    return {"gallery": name, "model": gallery.model, "type": factory(ws, gallery),
            "chosen_by": "user" if gallery.index_factory else "size",
            "faces": faces, "bytes": size, "bytes_per_face": round(size / faces, 1) if faces else None,
            "trained_on": trained, "added_since_training": added, "built_at": info.get("built_at"),
            "build_seconds": info.get("build_seconds"), "nprobe": info.get("nprobe"),
            "self_check": info.get("self_check"), "repaired": loaded.repaired,
            "rebuild_recommended": "; ".join(advice) or None}
