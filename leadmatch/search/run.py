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
from typing import Callable

from leadmatch.lazy import lazy

from leadmatch import safetext
from leadmatch.governance import policy, purposes
from leadmatch.record import audit
from leadmatch.gallery import calibration, index, space as spaces
from leadmatch.search import leads, probes, video
from leadmatch.biometrics import faceres, quality
from leadmatch.governance.accounts import Actor, require, require_search_ready
from leadmatch.governance.casework import AWAITING_DISPOSITION, can_read, seen_before, workflow
from leadmatch.errors import FaceChoiceNeeded, InputError, LeadmatchError, NotFound, Refused, concerning
from leadmatch.biometrics.faces import DETECTORS
from leadmatch.gallery.galleries import Gallery, factory, get as get_gallery
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, decode, display_name, read_bytes, sha256_bytes
from leadmatch.record.audit.report import CHOICE_NEEDED as CHOICE_OUTCOME
from leadmatch.record.store import transaction, utc_now
from leadmatch.search.video import is_video
from leadmatch.record.workspace import Workspace

np = lazy("numpy")


PROBE_SOURCES = ("original", "cropped", "enhanced", "composite", "sketch")
REFUSED_SOURCES = ("composite", "sketch")
MIN_JUSTIFICATION = (15, 3)        # characters, words
MIN_TRADITIONAL_MEANS = (30, 5)
#: The audit outcome of a search that stopped to ask which face or track (`FaceChoiceNeeded`): not a refusal.
CHOICE_NEEDED = CHOICE_OUTCOME


@dataclass
class SearchRequest:
    """What the agent asks for. `face` is a 1-based face number, "largest", or None (must be one face); for
    several stills it applies to each. A `probe` with a video extension is a clip."""

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
    more_probes: tuple = ()        # further stills of the same person
    track: int | str | None = None  # for a clip: track number or "largest"
    every_s: float = video.DEFAULT_EVERY_S
    best_frames: int = video.DEFAULT_BEST_FRAMES
    fusion: str = probes.DEFAULT_FUSION
    per_photo: bool = False        # one candidate per gallery photo instead of per subject
    budget: video.Budget = field(default_factory=video.Budget)  # what a clip's analysis may cost
    original: Path | None = None   # an enhanced probe's original photo (required with probe_source "enhanced")
    enhancement: str = ""          # what was done to the original (required with probe_source "enhanced")
    keep_analysis: Path | None = None  # a clip: the folder where its analysis is kept for the search after a pick
    progress: Callable[[float, float], None] | None = field(default=None, compare=False, repr=False)
    # ↑ a clip: told (seconds analysed, clip duration) while it is decoded; set where the search runs, never sent


def new_search_id() -> str:
    """A readable, unguessable id: S-<UTC date>-<8 hex>."""
    return f"S-{datetime.now(timezone.utc):%Y%m%d}-{secrets.token_hex(4)}"


def _substantive(text: str, minimum: tuple[int, int]) -> bool:
    text = (text or "").strip()
    return len(text) >= minimum[0] and len(text.split()) >= minimum[1]


def validate(ws: Workspace, request: SearchRequest) -> None:
    """Check the policy preconditions and options that need no photo. Each error names the request field it
    concerns (`LeadmatchError.field`), so a form can mark it; the messages keep the CLI's option names."""
    if not (request.case or "").strip():
        raise Refused("no case number given", "pass --case with the case this search serves", "missing-case",
                      field="case")
    with concerning("case"):
        safetext.check_name(request.case, "case number", "give the case number as it is written in the case file")
    with concerning("purpose"):
        safetext.check_name(request.purpose or "", "purpose", "pick one from `leadmatch purposes`")
    with concerning("justification"):
        safetext.check_text(request.justification or "", "--justification")
    with concerning("traditional_means"):
        safetext.check_text(request.traditional_means or "", "--traditional-means")
    if not (request.purpose or "").strip():
        raise Refused("no purpose given", "pass --purpose with an authorized purpose (see `leadmatch purposes`)",
                      "missing-purpose", field="purpose")
    retired = purposes.retirement(ws, request.purpose)
    if retired:
        raise Refused(f"purpose {request.purpose!r} was retired on {retired['retired_at'][:10]} by "
                      f"{retired['retired_by']}", "pick one from `leadmatch purposes`", "retired-purpose",
                      field="purpose")
    if not purposes.is_authorized(ws, request.purpose):
        raise Refused(f"purpose {request.purpose!r} is not an authorized purpose",
                      "pick one from `leadmatch purposes`; an admin may add one", "unauthorized-purpose",
                      field="purpose")
    if not _substantive(request.justification, MIN_JUSTIFICATION):
        raise Refused("--justification is empty or too short",
                      f"explain why this search is needed (at least {MIN_JUSTIFICATION[1]} words)",
                      "missing-justification", field="justification")
    if not _substantive(request.traditional_means, MIN_TRADITIONAL_MEANS):
        raise Refused("--traditional-means is empty or too short",
                      f"record what traditional investigative steps were tried and why they did not identify the "
                      f"person (at least {MIN_TRADITIONAL_MEANS[1]} words)", "missing-traditional-means",
                      field="traditional_means")
    if request.probe_source not in PROBE_SOURCES:
        raise InputError(f"--probe-source {request.probe_source!r} is not known",
                         f"use one of: {', '.join(PROBE_SOURCES)}", field="probe_source")
    if request.probe_source in REFUSED_SOURCES:
        raise Refused(f"a {request.probe_source} cannot be searched", "composites, sketches and artist renderings "
                      "are not photographs of a person; use a photo", "composite-probe", field="probe_source")
    if request.probe_source == "enhanced" and (request.original is None or len(request.enhancement.strip()) < 5):
        raise Refused("an enhanced probe needs its original and a description of the enhancement",
                      'pass --original FILE (the photo before editing) and --enhancement "what was done"',
                      "enhanced-without-original", field="original" if request.original is None else "enhancement")
    if request.probe_source != "enhanced" and (request.original is not None or request.enhancement.strip()):
        raise InputError("--original and --enhancement are only for --probe-source enhanced",
                         "add --probe-source enhanced, or leave them out", field="probe_source")
    if not leads.MIN_CANDIDATES <= request.top_k <= leads.MAX_CANDIDATES:
        raise InputError(f"--top-k {request.top_k} is out of range",
                         f"ask for {leads.MIN_CANDIDATES} to {leads.MAX_CANDIDATES} candidates", field="top_k")
    if request.detector not in DETECTORS:
        raise InputError(f"unknown detector {request.detector!r}", "use hog or cnn", field="detector")
    if request.fusion not in probes.FUSIONS:
        raise InputError(f"--fusion {request.fusion!r} is not known", f"use one of: {', '.join(probes.FUSIONS)}",
                         field="fusion")
    if request.threshold is not None and not 0.0 < request.threshold < 2.0:
        raise InputError(f"threshold {request.threshold} is out of range", "use a distance between 0 and 2",
                         field="threshold")
    # the deployment's policy narrows what the rules above allow (a top-k outside 2–50 stays bad input)
    videos = is_video(request.probe) or any(is_video(p) for p in request.more_probes)
    shortfall = policy.search_shortfall(ws, video=videos or request.details.get("video_faces", False),
                                        top_k=request.top_k, probe_source=request.probe_source)
    if shortfall:
        raise Refused(f"deployment policy: {shortfall[1]}", "ask an admin; `leadmatch policy show` lists the policy",
                      f"policy-{shortfall[0].replace('_', '-')}", field=POLICY_FIELDS.get(shortfall[0]))


#: The request field each deployment policy setting concerns (a refused search names it).
POLICY_FIELDS = {"video_probes": "probe", "candidates": "top_k", "enhanced_probes": "probe_source"}


def run(ws: Workspace, actor: Actor, request: SearchRequest, prepared=None) -> dict:
    """Agent: run and record one search; return it as `show` would. Any refusal is audited, then raised.

    The probe is a photo, several stills of one person (`request.more_probes`), or a video clip (by its
    extension), whose face track is searched with its best frames. `prepared(hashes)`, when given, returns the
    probe set instead (a case person's best faces), appending the sha256 of what it read to `hashes`."""
    case = safetext.shown((request.case or "").strip()) or None  # a refused one is audited escaped
    require(ws, actor, "agent", "search", case=case, objects={"gallery": request.gallery})
    require_search_ready(ws, actor, case)
    probe_hashes: list[str] = []
    try:
        validate(ws, request)
        with concerning("gallery"):
            gallery = get_gallery(ws, request.gallery)
        with concerning("probe"):
            probe_set = prepared(probe_hashes) if prepared else _probe_set(request, probe_hashes)
        with concerning("original"):
            original = _original(request, probe_hashes)
        return _record(ws, actor, request, gallery, probe_set, original)
    except LeadmatchError as exc:
        # A probe holding several faces or tracks is a question to the agent, not a refusal: its own outcome,
        # so refusal counts (the supervisors' report) count only what the rules or the input stopped.
        choice = isinstance(exc, FaceChoiceNeeded)
        audit.record(ws.conn, actor.name, "search", CHOICE_NEEDED if choice else "refused", case=case,
                     objects={"gallery": request.gallery, "probe": display_name(request.probe),
                              **({"more_probes": [display_name(p) for p in request.more_probes]}
                                 if request.more_probes else {}), **({"faces": exc.faces} if choice else {})},
                     reason=f"{CHOICE_NEEDED if choice else getattr(exc, 'reason', 'bad-input')}: {exc.message}",
                     photos=probe_hashes)
        raise


def _probe_set(request: SearchRequest, hashes: list[str]) -> probes.ProbeSet:
    """The faces the request searches with (photo, stills or a clip's track)."""
    if is_video(request.probe):
        if request.more_probes:
            raise InputError("a video and other probes were given together", "search one clip, or several stills")
        return probes.from_video(request.probe, request.track, request.detector, request.every_s,
                                 request.best_frames, hashes, request.budget, kept=request.keep_analysis,
                                 progress=request.progress)
    if any(is_video(p) for p in request.more_probes):
        raise InputError("a video and other probes were given together", "search one clip, or several stills")
    return probes.from_photos([request.probe, *request.more_probes], request.face, request.detector, hashes)


def _original(request: SearchRequest, hashes: list[str]) -> dict | None:
    """An enhanced probe's original photo: its bytes, sha256, suffix and name (None for other probes)."""
    if request.original is None:
        return None
    data = read_bytes(request.original)
    digest = sha256_bytes(data)
    hashes.append(digest)
    suffix = Path(request.original).suffix.lower()
    return {"name": display_name(Path(request.original).name), "sha256": digest, "data": data,
            "suffix": suffix if suffix in PHOTO_SUFFIXES else ""}


def _record(ws: Workspace, actor: Actor, request: SearchRequest, gallery: Gallery, probe_set: probes.ProbeSet,
            original: dict | None = None) -> dict:
    loaded = index.load(ws.conn, ws.indexes, gallery.id, factory(ws, gallery))
    if loaded.index.ntotal == 0:
        raise InputError(f"gallery {gallery.name!r} has no enrolled faces", f"enroll photos with `gallery enroll {gallery.name}`")
    calibrated = calibration.load(ws.conn, gallery.id) or calibration.refresh(ws.conn, gallery.id, loaded.index)
    threshold = request.threshold if request.threshold is not None else calibrated.threshold
    space = spaces.of_gallery(ws.conn, gallery.id)
    embeddings = probe_vectors(space, probe_set)
    candidates = rank_candidates(ws, loaded.index, embeddings, request.top_k, threshold, calibrated,
                                 per_photo=request.per_photo, fusion=request.fusion, space=space,
                                 lead=probe_set.lead)
    lead = probe_set.lead_face
    flags = sorted({f"low-quality: {w}" for p in probe_set.faces for w in quality.PROBE.warnings(p.face)})
    if probe_set.kind == "stills":
        flags.append(f"several stills asserted by the agent to show one person ({len(probe_set.faces)} photos)")
    flags.extend(probe_set.flags)
    search_id, now = new_search_id(), utc_now()
    enhancement = None
    if request.probe_source == "enhanced" and original is not None:
        kept = ws.store_photo(original["data"], original["sha256"], original["suffix"])
        enhancement = {"description": request.enhancement.strip(),
                       "original": {"name": original["name"], "sha256": original["sha256"],
                                    "stored_path": str(kept.relative_to(ws.home))}}
        flags.append(f"enhanced probe: {enhancement['description']} — original {original['name']} "
                     f"(sha256 {original['sha256']}); probe sha256 {probe_set.source_sha256}")
    frames = []
    for p in probe_set.faces:
        stored = ws.store_photo(p.image, p.image_sha256, p.suffix)
        frames.append({**p.provenance(), "stored_path": str(stored.relative_to(ws.home))})
    details = {**request.details, "model": space.model, "detector": request.detector,
               "candidate_list": "photo" if request.per_photo else "subject", "probe_kind": probe_set.kind,
               "probe_description": probe_set.describe()}
    if len(probe_set.faces) > 1:
        details["fusion"] = request.fusion
    if probe_set.video:
        details["video"] = probe_set.video
    if loaded.repaired:
        details["index_repaired"] = loaded.repaired
    if enhancement:
        details["enhancement"] = enhancement
    with transaction(ws.conn):
        ws.conn.execute(
            "INSERT INTO searches (id, case_number, gallery_id, agent, created_at, probe_sha256, probe_name, "
            "probe_stored_path, faces_in_probe, face_index, box, quality, flags, top_k, threshold, index_type, details, "
            "purpose, justification, traditional_means, probe_source, status, probe_frames, calibration) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (search_id, request.case.strip(), gallery.id, actor.name, now, probe_set.source_sha256,
             probe_set.source_name, frames[probe_set.lead]["stored_path"], lead.faces_in_image, lead.face.index,
             json.dumps(list(lead.face.box)), json.dumps(lead.face.quality()), json.dumps(flags), request.top_k,
             threshold, loaded.factory, json.dumps(details, ensure_ascii=False),
             request.purpose.strip().lower(), request.justification.strip(), request.traditional_means.strip(),
             request.probe_source, AWAITING_DISPOSITION, json.dumps(frames, ensure_ascii=False),
             json.dumps(calibrated.summary() | {"resolution": calibrated.resolution()})))
        ws.conn.executemany(
            "INSERT INTO candidates (search_id, rank, face_id, subject, photo_sha256, image, box, distance, score, "
            "within_threshold, false_alarm_rate, faces, probe_distances) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            # score: the retired linear 0-100 display scale; the column stays for older records, written as 0.
            [(search_id, c["rank"], c["face_id"], c["subject"], c["photo_sha256"], c["image"], json.dumps(c["box"]),
              c["distance"], 0.0, int(c["within_threshold"]), c["false_alarm_rate"],
              None if c.get("faces") is None else json.dumps(c["faces"], ensure_ascii=False),
              None if c.get("probe_distances") is None else json.dumps(c["probe_distances"]))
             for c in candidates])
        audit.record(ws.conn, actor.name, "search", case=request.case.strip(), search_id=search_id,
                     objects={"gallery": gallery.name, "face": lead.face.index, "probe_kind": probe_set.kind,
                              "probe_faces": len(probe_set.faces),
                              "purpose": request.purpose.strip().lower(), "candidates": len(candidates),
                              "within_threshold": sum(c["within_threshold"] for c in candidates),
                              **({"index_repaired": loaded.repaired} if loaded.repaired else {})},
                     photos=list(dict.fromkeys([probe_set.source_sha256] + [f["sha256"] for f in frames]
                                               + ([original["sha256"]] if enhancement else [])
                                               + [c["photo_sha256"] for c in candidates])))
    return _view(ws, search_id)


def probe_vectors(space: spaces.Space, probe_set: probes.ProbeSet) -> np.ndarray:
    """The probe faces' search vectors in the gallery's space: dlib's descriptors, or for dlib+faceres those
    fused with each face's FaceRes descriptor, computed from the image the face was found in and its box."""
    dlib = np.stack([p.face.embedding for p in probe_set.faces])
    if not space.fused:
        return dlib
    described = [faceres.describe(decode(p.image, name=p.source).pixels, [p.face.box])[0] for p in probe_set.faces]
    return space.vectors(dlib, np.stack(described))


def _fused(embeddings: np.ndarray, fusion: str, dim: int = index.DIM, lead: int = 0) -> np.ndarray:
    """The probe vectors a fusion rule compares with: all of them (min), their mean, or the leading (best)
    face's, row `lead`."""
    embeddings = np.asarray(embeddings, dtype=np.float32).reshape(-1, dim)
    if fusion == "mean":
        return embeddings.mean(axis=0, keepdims=True)
    if fusion == "best":
        return embeddings[lead:lead + 1]
    return embeddings


def rank_candidates(ws: Workspace, faiss_index, embedding: np.ndarray, top_k: int, threshold: float,
                    calibrated: calibration.Calibration | None = None, per_photo: bool = False,
                    fusion: str = probes.DEFAULT_FUSION, space: spaces.Space | None = None,
                    lead: int = 0) -> list[dict]:
    """Ranked lead-only candidates for one or several probe embeddings (rows of `embedding`).

    A candidate is a subject, ranked by its closest face, with every enrolled face of that subject and its
    distance (`faces`); `per_photo` gives one candidate per gallery face instead. With several probe vectors a
    face's distance is the smallest over them (`probe_distances` lists each). The index proposes faces; the
    distances are recomputed exactly from the record, and an approximate index proposes twice as many. `space`
    is the gallery's (dlib's when not given): probe vectors and the record's faces are compared in it. `lead`:
    the row of the best probe face (what `best` fusion compares with)."""
    space = space or spaces.Space()
    raw = np.asarray(embedding, dtype=np.float32).reshape(-1, space.dim)
    vectors = _fused(raw, fusion, space.dim, lead)
    factor = 1 if index.is_exact(faiss_index) else index.RERANK_FACTOR
    proposals = top_k * factor * (1 if per_photo else 4)
    while True:
        ids = np.unique(np.concatenate([index.search(faiss_index, v, proposals)[0] for v in vectors]))
        scored = _exact(ws, ids, vectors, space)
        subjects = {row["subject_id"] for _, row in scored}
        enough = len(scored) if per_photo else len(subjects)
        if enough >= top_k or proposals >= faiss_index.ntotal:
            break
        proposals *= 4  # one subject took many slots: look further for distinct subjects
    if per_photo:
        return [_candidate(rank, distance, row, threshold, calibrated, raw, space)
                for rank, (distance, row) in enumerate(scored[:top_k], start=1)]
    best: dict[int, tuple] = {}
    for distance, row in scored:
        best.setdefault(row["subject_id"], (distance, row))
    ranked = sorted(best.values(), key=lambda item: (item[0], item[1]["id"]))[:top_k]
    members = _subject_faces(ws, [row["subject_id"] for _, row in ranked], vectors, space)
    out = []
    for rank, (distance, row) in enumerate(ranked, start=1):
        candidate = _candidate(rank, distance, row, threshold, calibrated, raw, space)
        candidate["faces"] = members[row["subject_id"]]
        out.append(candidate)
    return out


def _exact(ws: Workspace, ids: np.ndarray, vectors: np.ndarray, space: spaces.Space) -> list[tuple]:
    """[(distance, row)] for the face ids, nearest first (ties by face id); with several vectors, the nearest."""
    if len(ids) == 0:
        return []
    rows = ws.conn.execute(
        "SELECT f.id, f.subject_id, f.embedding, f.faceres, f.box_top, f.box_right, f.box_bottom, f.box_left, f.quality_flags, "
        "s.name AS subject, p.sha256, p.source_path FROM faces f JOIN subjects s ON s.id = f.subject_id JOIN photos p ON p.id = f.photo_id "
        f"WHERE f.id IN ({','.join('?' * len(ids))})", [int(i) for i in ids]).fetchall()
    scored = []
    for row in rows:
        distance = np.linalg.norm(vectors - space.of_row(row), axis=1).min()
        scored.append((float(distance), row))
    scored.sort(key=lambda item: (item[0], item[1]["id"]))
    return scored


def _subject_faces(ws: Workspace, subject_ids: list[int], vectors: np.ndarray,
                   space: spaces.Space) -> dict[int, list[dict]]:
    """Every enrolled face of each subject with its exact distance, nearest first."""
    out: dict[int, list[dict]] = {s: [] for s in subject_ids}
    if not subject_ids:
        return out
    rows = ws.conn.execute(
        "SELECT f.id, f.subject_id, f.embedding, f.faceres, p.source_path, p.sha256 FROM faces f "
        "JOIN photos p ON p.id = f.photo_id "
        f"WHERE f.subject_id IN ({','.join('?' * len(subject_ids))})", subject_ids).fetchall()
    for row in rows:
        distance = float(np.linalg.norm(vectors - space.of_row(row), axis=1).min())
        out[row["subject_id"]].append({"face_id": row["id"], "image": row["source_path"],
                                       "photo_sha256": row["sha256"], "distance": round(distance, 4)})
    for faces in out.values():
        faces.sort(key=lambda f: (f["distance"], f["face_id"]))
    return out


def _candidate(rank: int, distance: float, row, threshold: float, calibrated: calibration.Calibration | None,
               raw: np.ndarray, space: spaces.Space) -> dict:
    """One candidate's fields, with the estimated false-alarm rate at its distance (from `calibrated`) and the
    gallery face's quality flags; with several probe faces, the face's distance to each (`probe_distances`)."""
    candidate = {"rank": rank, "subject": row["subject"], "face_id": row["id"], "image": row["source_path"],
                 "photo_sha256": row["sha256"],
                 "box": [row["box_top"], row["box_right"], row["box_bottom"], row["box_left"]],
                 "gallery_flags": json.loads(row["quality_flags"] or "[]"),
                 **leads.candidate_fields(distance, threshold,
                                          calibrated.fpir_at(distance) if calibrated else None,
                                          calibrated.describe_rate(distance) if calibrated else None)}
    if len(raw) > 1:
        per = np.linalg.norm(raw - space.of_row(row), axis=1)
        candidate["probe_distances"] = [round(float(d), 4) for d in per]
    return candidate


def _matched_faces(c) -> dict:
    """A subject candidate's enrolled faces and per-probe-face distances, where the search recorded them."""
    out = {}
    if c["faces"] is not None:
        faces = json.loads(c["faces"])
        out["faces"] = faces
        out["also_matched"] = max(0, len(faces) - 1)
    if c["probe_distances"] is not None:
        out["probe_distances"] = json.loads(c["probe_distances"])
    return out


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
    earlier = seen_before(ws, search_id)
    calibrated = json.loads(row["calibration"]) if row["calibration"] else None
    flags_of = {r[0]: json.loads(r[1] or "[]") for r in ws.conn.execute(
        "SELECT f.id, f.quality_flags FROM faces f JOIN candidates c ON c.face_id = f.id WHERE c.search_id = ?",
        (search_id,))}
    candidates = [
        {"rank": c["rank"], "subject": c["subject"], "face_id": c["face_id"], "image": c["image"],
         "photo_sha256": c["photo_sha256"], "box": json.loads(c["box"]), "gallery_flags": flags_of.get(c["face_id"], []),
         **leads.candidate_fields(c["distance"], row["threshold"], c["false_alarm_rate"],
                                  _rate_text(c["false_alarm_rate"], calibrated)),
         **_matched_faces(c),
         "disposition": flow["dispositions"].get(c["rank"]),
         "seen_before": earlier.get(c["subject"], []),
         "corroboration": [e for e in flow["corroborations"] if e["rank"] == c["rank"]]}
        for c in ws.conn.execute("SELECT * FROM candidates WHERE search_id = ? ORDER BY rank", (search_id,))]
    details = json.loads(row["details"])
    frames = json.loads(row["probe_frames"]) if row["probe_frames"] else []
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
        "model": details.get("model", spaces.DLIB),
        "agent": row["agent"],
        "created_at": row["created_at"],
        "purged_at": row["purged_at"],
        "threshold": row["threshold"],
        "calibration": calibrated,
        "index": row["index_type"],
        "flags": json.loads(row["flags"]),
        # Searches recorded before subject lists have one candidate per gallery photo: shown as recorded.
        "candidate_list": details.get("candidate_list", "photo"),
        "probe": {"name": row["probe_name"], "sha256": row["probe_sha256"], "face_index": row["face_index"],
                  "faces_in_photo": row["faces_in_probe"], "box": json.loads(row["box"]),
                  "quality": json.loads(row["quality"]), "kind": details.get("probe_kind", "photo"),
                  "description": details.get("probe_description", row["probe_name"]),
                  "frames": [{k: v for k, v in f.items() if k != "stored_path"} for f in frames]},
        "details": details,
        "candidates": candidates,
        "closure": flow["closure"],
        "history": flow["history"],
    }


def _rate_text(rate: float | None, calibrated: dict | None) -> str | None:
    """A stored candidate's estimated false-alarm rate as every output shows it ('3 %', 'under 0.1 %')."""
    if rate is None or not calibrated:
        return None
    return calibration.rate_words(rate, calibrated["resolution"])
