"""Persons: the unknown people who recur across a case's media, found by grouping its faces.

Grouping: each usable photo face is one unit, each face track of a clip one unit (its usable best frames'
mean embedding: the tracker already says they are one person). Units are joined by an edge when the model's
distance between them is under GROUPING_THRESHOLD, among each unit's NEIGHBOURS nearest (a FAISS k-NN graph, so
100k faces cost seconds, not the n² pairs of a full graph), and the graph is cut into persons by dlib's Chinese
whispers. Why that: it needs no number of persons in advance (unlike k-means), it is linear in the edges, it is
what dlib (whose model this is) ships for exactly this, and it never joins two units with no chain of
close pairs between them. The threshold is conservative (a wrong merge is worse than a split): chosen on
lfw-dev for pairwise precision ≥ 0.99 (`benchmarks/grouping.py`, table in benchmarks/results/grouping.md).

Faces below the probe quality floor are kept as appearances of their file but not grouped. Grouping never
moves a face already in a person: new media add persons or join existing ones. Merge, split and drop are the
agent's, each with a reason, recorded with who and when (audited), and undoable (`undo`).
"""

from __future__ import annotations

import json
from pathlib import Path

from leadmatch.lazy import lazy

from leadmatch.biometrics.faces import Face
from leadmatch.casemedia.cases import case_model, may_read
from leadmatch.errors import InputError, NotFound
from leadmatch.governance import policy
from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, refuse, require
from leadmatch.record.store import blob_to_embedding, transaction, utc_now
from leadmatch.record.workspace import Workspace
from leadmatch.search import probes

np = lazy("numpy")

#: Distance under which two units may be the same person: on lfw-dev the largest with pairwise precision ≥ 0.99 in
#: every shuffle (0.40: 1.0, recall 0.36; 0.41: 0.989; 0.46: 0.90 — the false merges there are look-alike East
#: Asian adults and a child, a known weakness of this model). See benchmarks/results/grouping.md.
GROUPING_THRESHOLD = 0.40
NEIGHBOURS = 20
#: Above this many units the k-NN graph comes from an IVF index (approximate: √n lists, IVF_NPROBE probed; a
#: neighbour it misses can only split a person, never merge two).
EXACT_UP_TO = 20_000
IVF_NPROBE = 8
BEST_FACES = 5
MIN_REASON = 5


# Clustering ------------------------------------------------------------------------------------------------

def knn_edges(vectors: np.ndarray, threshold: float, neighbours: int = NEIGHBOURS) -> list[tuple[int, int]]:
    """Pairs (i < j) among each vector's `neighbours` nearest that are closer than `threshold`."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2:
        return []
    k = min(n, neighbours + 1)
    if n <= EXACT_UP_TO:
        index = faiss.IndexFlatL2(vectors.shape[1])
    else:
        lists = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(vectors.shape[1]), vectors.shape[1], lists)
        index.train(vectors[np.random.default_rng(0).choice(n, min(n, 40 * lists), replace=False)])
        index.nprobe = IVF_NPROBE
    index.add(vectors)
    squared, ids = index.search(vectors, k)
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    keep = (ids >= 0) & (ids != rows) & (squared < threshold * threshold)
    pairs = np.stack([np.minimum(rows[keep], ids[keep]), np.maximum(rows[keep], ids[keep])], axis=1)
    return [(int(a), int(b)) for a, b in np.unique(pairs, axis=0)] if len(pairs) else []


def cluster(vectors: np.ndarray, threshold: float = GROUPING_THRESHOLD, neighbours: int = NEIGHBOURS) -> list[int]:
    """A cluster label per vector: Chinese whispers on the k-NN graph under `threshold` (a vector with no
    edge is its own cluster). Deterministic for the same input."""
    import dlib

    n = len(vectors)
    if n == 0:
        return []
    edges = knn_edges(vectors, threshold, neighbours)
    # every vertex gets a self-edge so that dlib numbers all n of them, linked or not
    labels = dlib.chinese_whispers([(i, i) for i in range(n)] + edges)
    return [int(label) for label in labels]


# Grouping a case -------------------------------------------------------------------------------------------

def _units(ws: Workspace, case: str) -> list[dict]:
    """The case's groupable units: usable photo faces one by one, clip tracks whole (mean of usable frames)."""
    # faces of a dropped (or merged-away) person take no part: nothing new may join a person no one sees
    rows = ws.conn.execute(
        "SELECT f.id, f.media_id, f.track, f.person_id, f.embedding FROM case_faces f JOIN case_media m "
        "ON m.id = f.media_id LEFT JOIN case_persons p ON p.id = f.person_id WHERE f.case_number = ? AND "
        "f.usable = 1 AND m.purged_at IS NULL AND (f.person_id IS NULL OR p.dropped_at IS NULL) ORDER BY f.id",
        (case,)).fetchall()
    units: dict[tuple, dict] = {}
    for r in rows:
        key = ("track", r["media_id"], r["track"]) if r["track"] is not None else ("face", r["id"])
        unit = units.setdefault(key, {"faces": [], "vectors": [], "persons": set(), "media": r["media_id"]})
        unit["faces"].append(r["id"])
        unit["vectors"].append(blob_to_embedding(r["embedding"]))
        if r["person_id"] is not None:
            unit["persons"].add(r["person_id"])
    for unit in units.values():
        unit["vector"] = np.mean(unit["vectors"], axis=0)
    return list(units.values())


def group(ws: Workspace, actor: Actor, case: str) -> dict:
    """Put the case's ungrouped units into persons (existing persons keep their faces). Returns counts."""
    units = _units(ws, case)
    if not units:
        return {"persons": _count(ws, case), "new_persons": 0, "faces_grouped": 0}
    labels = cluster(np.stack([u["vector"] for u in units]))
    clusters: dict[int, list[dict]] = {}
    for unit, label in zip(units, labels):
        clusters.setdefault(label, []).append(unit)
    now, created, grouped = utc_now(), 0, 0
    with transaction(ws.conn):
        for members in clusters.values():
            fresh = [u for u in members if not u["persons"]]
            if not fresh:
                continue
            held = [u for u in members if u["persons"]]
            for unit in fresh:
                if held:  # joins the existing person whose unit it is nearest to
                    nearest = min(held, key=lambda h: float(np.linalg.norm(h["vector"] - unit["vector"])))
                    person = min(nearest["persons"])
                else:
                    person = None
                if person is None:
                    person = _new_person(ws, case, "grouping", actor.name, now)
                    created += 1
                    held = [unit]
                    unit["persons"] = {person}
                else:
                    unit["persons"] = {person}
                ws.conn.executemany("UPDATE case_faces SET person_id = ? WHERE id = ?",
                                    [(person, face) for face in unit["faces"]])
                grouped += len(unit["faces"])
        audit.record(ws.conn, actor.name, "person.group", case=case,
                     objects={"units": len(units), "new_persons": created, "faces_grouped": grouped,
                              "threshold": GROUPING_THRESHOLD, "model": case_model(ws, case)})
    return {"persons": _count(ws, case), "new_persons": created, "faces_grouped": grouped}


def _count(ws: Workspace, case: str) -> int:
    return ws.conn.execute("SELECT count(*) FROM case_persons WHERE case_number = ? AND dropped_at IS NULL",
                           (case,)).fetchone()[0]


def _new_person(ws: Workspace, case: str, origin: str, by: str, now: str) -> int:
    number = ws.conn.execute("SELECT coalesce(max(CAST(substr(label, 2) AS INTEGER)), 0) FROM case_persons "
                             "WHERE case_number = ?", (case,)).fetchone()[0] + 1
    return ws.conn.execute("INSERT INTO case_persons (case_number, label, origin, created_at, created_by) "
                           "VALUES (?, ?, ?, ?, ?)", (case, f"P{number}", origin, now, by)).lastrowid


# Reading ---------------------------------------------------------------------------------------------------

def _appearances(ws: Workspace, person_id: int) -> list[dict]:
    rows = ws.conn.execute(
        "SELECT f.*, m.name, m.sha256 AS media_sha256, m.kind FROM case_faces f JOIN case_media m ON m.id = f.media_id "
        "WHERE f.person_id = ? ORDER BY m.id, f.track, f.time_s, f.face_index", (person_id,)).fetchall()
    return [{"face_id": r["id"], "file": r["name"], "sha256": r["media_sha256"], "kind": r["kind"],
             "track": r["track"], "time_s": r["time_s"], "box": json.loads(r["box"]),
             "quality": json.loads(r["quality"]), "quality_score": r["quality_score"], "usable": bool(r["usable"]),
             "image_sha256": r["image_sha256"], **json.loads(r["details"])} for r in rows]


def _person_row(ws: Workspace, case: str, label: str):
    row = ws.conn.execute("SELECT * FROM case_persons WHERE case_number = ? AND label = ?",
                          (case, (label or "").strip().upper())).fetchone()
    if row is None:
        raise NotFound(f"case {case} has no person {label!r}", f"see `leadmatch media persons {case}`")
    return row


def describe(ws: Workspace, row) -> dict:
    """One person: label, state, appearances (file, sha256, time in clip, box, quality), best faces, and how
    tight the group is (the largest and mean distance between its units)."""
    appearances = _appearances(ws, row["id"])
    best = sorted((a for a in appearances if a["usable"]), key=lambda a: -a["quality_score"])[:BEST_FACES]
    vectors = {}
    for r in ws.conn.execute("SELECT id, media_id, track, embedding FROM case_faces WHERE person_id = ? AND usable = 1",
                             (row["id"],)):
        key = (r["media_id"], r["track"]) if r["track"] is not None else ("face", r["id"])
        vectors.setdefault(key, []).append(blob_to_embedding(r["embedding"]))
    means = np.array([np.mean(v, axis=0) for v in vectors.values()]) if vectors else np.zeros((0, 128))
    pairs = [float(np.linalg.norm(means[i] - means[j])) for i in range(len(means)) for j in range(i + 1, len(means))]
    return {"label": row["label"], "case": row["case_number"], "origin": row["origin"],
            "created_at": row["created_at"], "created_by": row["created_by"],
            "dropped": None if not row["dropped_at"] else {"at": row["dropped_at"], "by": row["dropped_by"],
                                                           "reason": row["drop_reason"]},
            "appearances": appearances, "files": len({a["sha256"] for a in appearances}),
            "tracks": len({(a["sha256"], a["track"]) for a in appearances if a["track"] is not None}),
            "best_faces": [a["face_id"] for a in best],
            "cohesion": {"units": len(means), "max_distance": round(max(pairs), 4) if pairs else None,
                         "mean_distance": round(float(np.mean(pairs)), 4) if pairs else None,
                         "threshold": GROUPING_THRESHOLD}}


def listing(ws: Workspace, actor: Actor, case: str, include_dropped: bool = False) -> dict:
    """The case's persons (largest first), ungrouped faces counted, the grouping's threshold and model."""
    may_read(ws, actor, case, "person.list")
    rows = ws.conn.execute("SELECT * FROM case_persons WHERE case_number = ?" +
                           ("" if include_dropped else " AND dropped_at IS NULL") + " ORDER BY id", (case,)).fetchall()
    people = sorted((describe(ws, r) for r in rows), key=lambda p: (-len(p["appearances"]), p["label"]))
    ungrouped = ws.conn.execute("SELECT count(*) FROM case_faces WHERE case_number = ? AND person_id IS NULL",
                                (case,)).fetchone()[0]
    audit.record(ws.conn, actor.name, "person.list", case=case, objects={"persons": len(people)})
    return {"case": case, "model": case_model(ws, case), "threshold": GROUPING_THRESHOLD, "persons": people,
            "ungrouped_faces": ungrouped,
            "changes": [dict(r) | {"before": None, "after": None} for r in ws.conn.execute(
                "SELECT id, action, actor, reason, at, undone_by FROM case_person_changes WHERE case_number = ? "
                "ORDER BY id", (case,))]}


def show(ws: Workspace, actor: Actor, case: str, label: str) -> dict:
    may_read(ws, actor, case, "person.read")
    person = describe(ws, _person_row(ws, case, label))
    audit.record(ws.conn, actor.name, "person.read", case=case, objects={"person": person["label"]})
    return person


def face_image(ws: Workspace, actor: Actor, case: str, face_id: int, size: int = 160) -> bytes:
    """A PNG of one case face (its box cut from its photo or frame), for pages and the export."""
    from leadmatch.search import crops

    may_read(ws, actor, case, "person.read")
    row = ws.conn.execute("SELECT image_path, box FROM case_faces WHERE id = ? AND case_number = ?",
                          (face_id, case)).fetchone()
    if row is None or not row["image_path"] or not (ws.home / row["image_path"]).exists():
        raise NotFound(f"case {case} has no face {face_id} with an image", "see the person's appearances")
    return crops.face_crop_png((ws.home / row["image_path"]).read_bytes(), json.loads(row["box"]), size=size)


# Changes ---------------------------------------------------------------------------------------------------

def _agent_change(ws: Workspace, actor: Actor, case: str, action: str, reason: str, objects: dict) -> str:
    """The checks every change shares: an agent on the case, case media on, a reason. Returns the reason."""
    require(ws, actor, "agent", action, case=case, objects=objects)
    may_read(ws, actor, case, action)
    if not policy.get(ws).case_media:
        raise policy.refused(ws, actor, action, "case_media", "case media are switched off in this deployment",
                             case=case, objects=objects)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise refuse(ws, actor, action, "missing-reason", "--reason is empty or too short",
                     f"say why (at least {MIN_REASON} characters)", case=case, objects=objects)
    return reason


def _snapshot(ws: Workspace, face_ids: list[int], person_ids: list[int]) -> dict:
    faces = {str(r[0]): r[1] for r in ws.conn.execute(
        f"SELECT id, person_id FROM case_faces WHERE id IN ({','.join('?' * len(face_ids))})", face_ids)} \
        if face_ids else {}
    persons = {str(r["id"]): {"dropped_at": r["dropped_at"], "dropped_by": r["dropped_by"],
                              "drop_reason": r["drop_reason"]} for r in ws.conn.execute(
        f"SELECT * FROM case_persons WHERE id IN ({','.join('?' * len(person_ids))})", person_ids)} \
        if person_ids else {}
    return {"faces": faces, "persons": persons}


def _apply(ws: Workspace, state: dict) -> None:
    ws.conn.executemany("UPDATE case_faces SET person_id = ? WHERE id = ?",
                        [(person, int(face)) for face, person in state["faces"].items()])
    ws.conn.executemany("UPDATE case_persons SET dropped_at = ?, dropped_by = ?, drop_reason = ? WHERE id = ?",
                        [(p["dropped_at"], p["dropped_by"], p["drop_reason"], int(pid))
                         for pid, p in state["persons"].items()])


def _log(ws: Workspace, case: str, action: str, actor: Actor, reason: str, before: dict, after: dict,
         now: str) -> int:
    return ws.conn.execute(
        "INSERT INTO case_person_changes (case_number, action, actor, reason, at, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (case, action, actor.name, reason, now, json.dumps(before),
                                         json.dumps(after))).lastrowid


def _faces_of(ws: Workspace, person_id: int) -> list[int]:
    return [r[0] for r in ws.conn.execute("SELECT id FROM case_faces WHERE person_id = ?", (person_id,))]


def merge(ws: Workspace, actor: Actor, case: str, labels: list[str], reason: str) -> dict:
    """Agent: the persons `labels` are one person: every face goes to the first; the others are closed as
    merged into it. Recorded and audited; `undo` reverses it."""
    objects = {"persons": labels}
    reason = _agent_change(ws, actor, case, "person.merge", reason, objects)
    rows = [_person_row(ws, case, label) for label in labels]
    if len({r["id"] for r in rows}) < 2:
        raise InputError("merge needs two or more different persons", "name them, e.g. P1 P4")
    if any(r["dropped_at"] for r in rows):
        raise refuse(ws, actor, "person.merge", "dropped-person", "a dropped or merged person cannot be merged",
                     "undo the drop first", case=case, objects=objects)
    keep, others = rows[0], rows[1:]
    faces = [f for r in others for f in _faces_of(ws, r["id"])]
    now = utc_now()
    with transaction(ws.conn):
        before = _snapshot(ws, faces, [r["id"] for r in others])
        after = {"faces": {str(f): keep["id"] for f in faces},
                 "persons": {str(r["id"]): {"dropped_at": now, "dropped_by": actor.name,
                                            "drop_reason": f"merged into {keep['label']}: {reason}"} for r in others}}
        _apply(ws, after)
        change = _log(ws, case, "merge", actor, reason, before, after, now)
        audit.record(ws.conn, actor.name, "person.merge", case=case,
                     objects={"into": keep["label"], "persons": [r["label"] for r in others], "faces": len(faces),
                              "change": change}, reason=reason)
    return {"case": case, "person": keep["label"], "merged": [r["label"] for r in others], "faces_moved": len(faces),
            "change": change}


def split(ws: Workspace, actor: Actor, case: str, label: str, face_ids: list[int], reason: str) -> dict:
    """Agent: these appearances of `label` are someone else: they become a new person. Giving any face of a
    clip track moves the whole track (the tracker joined its frames). Recorded, audited, undoable."""
    objects = {"person": label, "faces": face_ids}
    reason = _agent_change(ws, actor, case, "person.split", reason, objects)
    row = _person_row(ws, case, label)
    owned = {r["id"]: r for r in ws.conn.execute("SELECT id, media_id, track FROM case_faces WHERE person_id = ?",
                                                  (row["id"],))}
    missing = [f for f in face_ids if f not in owned]
    if not face_ids or missing:
        raise InputError(f"person {row['label']} has no appearance {missing[0] if missing else '(none given)'}",
                         f"give face ids from `leadmatch media person {case} {row['label']}`")
    chosen = {f for f in face_ids}
    tracks = {(owned[f]["media_id"], owned[f]["track"]) for f in face_ids if owned[f]["track"] is not None}
    chosen |= {f for f, r in owned.items() if (r["media_id"], r["track"]) in tracks}
    if len(chosen) == len(owned):
        raise InputError(f"that is every appearance of {row['label']}", "split off only some of them (or drop it)")
    now = utc_now()
    with transaction(ws.conn):
        before = _snapshot(ws, sorted(chosen), [])
        new = _new_person(ws, case, "split", actor.name, now)
        after = {"faces": {str(f): new for f in sorted(chosen)}, "persons": {}}
        _apply(ws, after)
        label_new = ws.conn.execute("SELECT label FROM case_persons WHERE id = ?", (new,)).fetchone()[0]
        before["persons"] = {str(new): {"dropped_at": now, "dropped_by": actor.name,
                                        "drop_reason": "split undone"}}
        change = _log(ws, case, "split", actor, reason, before, after, now)
        audit.record(ws.conn, actor.name, "person.split", case=case,
                     objects={"from": row["label"], "into": label_new, "faces": len(chosen), "change": change},
                     reason=reason)
    return {"case": case, "person": row["label"], "new_person": label_new, "faces_moved": len(chosen),
            "change": change}


def drop(ws: Workspace, actor: Actor, case: str, label: str, reason: str) -> dict:
    """Agent: set a person aside (not listed, not searchable); its appearances stay on record. Undoable."""
    objects = {"person": label}
    reason = _agent_change(ws, actor, case, "person.drop", reason, objects)
    row = _person_row(ws, case, label)
    if row["dropped_at"]:
        raise refuse(ws, actor, "person.drop", "already-dropped", f"person {row['label']} is already dropped",
                     "undo the drop to restore it", case=case, objects=objects)
    now = utc_now()
    with transaction(ws.conn):
        before = _snapshot(ws, [], [row["id"]])
        after = {"faces": {}, "persons": {str(row["id"]): {"dropped_at": now, "dropped_by": actor.name,
                                                           "drop_reason": reason}}}
        _apply(ws, after)
        change = _log(ws, case, "drop", actor, reason, before, after, now)
        audit.record(ws.conn, actor.name, "person.drop", case=case, objects={"person": row["label"],
                                                                             "change": change}, reason=reason)
    return {"case": case, "person": row["label"], "dropped": True, "change": change}


def undo(ws: Workspace, actor: Actor, case: str, reason: str) -> dict:
    """Agent: reverse the case's latest merge, split or drop not yet undone (the undo is itself recorded)."""
    reason = _agent_change(ws, actor, case, "person.undo", reason, {})
    last = ws.conn.execute("SELECT * FROM case_person_changes WHERE case_number = ? AND action != 'undo' AND "
                           "undone_by IS NULL ORDER BY id DESC LIMIT 1", (case,)).fetchone()
    if last is None:
        raise refuse(ws, actor, "person.undo", "nothing-to-undo", f"case {case} has no change left to undo",
                     "see the changes in `leadmatch media persons`", case=case)
    now = utc_now()
    with transaction(ws.conn):
        before, after = json.loads(last["after"]), json.loads(last["before"])
        _apply(ws, after)
        change = _log(ws, case, "undo", actor, reason, before, after, now)
        ws.conn.execute("UPDATE case_person_changes SET undone_by = ? WHERE id = ?", (change, last["id"]))
        audit.record(ws.conn, actor.name, "person.undo", case=case,
                     objects={"undid": last["id"], "action": last["action"], "change": change}, reason=reason)
    return {"case": case, "undid": last["action"], "change": last["id"]}


# Searching a person ----------------------------------------------------------------------------------------

def search(ws: Workspace, actor: Actor, case: str, label: str, request) -> dict:
    """Agent: search a person's best faces against a gallery as one multi-still probe (`request`: a
    search.run.SearchRequest whose probe is ignored), the appearances as provenance on every output. Everything
    else is a normal search: lead only, dispositions, corroboration, audit."""
    from leadmatch.search import run as searching

    objects = {"person": label, "gallery": request.gallery}
    require(ws, actor, "agent", "search", case=case, objects=objects)
    may_read(ws, actor, case, "search")
    if not policy.get(ws).case_media:
        raise policy.refused(ws, actor, "search", "case_media", "case media are switched off in this deployment",
                             case=case, objects=objects)
    row = _person_row(ws, case, label)
    if row["dropped_at"]:
        raise refuse(ws, actor, "search", "dropped-person", f"person {row['label']} was dropped: {row['drop_reason']}",
                     "undo the drop to search it", case=case, objects=objects)
    person = describe(ws, row)
    usable = sorted((a for a in person["appearances"] if a["usable"]), key=lambda a: -a["quality_score"])
    if not policy.get(ws).video_probes:  # face recognition on recorded video is off: the person's photos only
        usable = [a for a in usable if a["kind"] != "video"]
        if not usable:
            raise policy.refused(ws, actor, "search", "video_probes", f"video is switched off in this deployment "
                                 f"and person {row['label']} is seen only in clips", case=case, objects=objects)
    best = usable[:BEST_FACES]
    if not best:
        raise refuse(ws, actor, "search", "low-quality-probe", f"person {row['label']} has no face of searchable "
                     "quality", "add better media of this person", case=case, objects=objects)
    request.case = case
    request.probe = Path(f"person-{row['label']}")
    request.more_probes = ()
    provenance = [{k: a.get(k) for k in ("face_id", "file", "sha256", "kind", "track", "time_s", "box", "quality")}
                  for a in person["appearances"]]
    request.details = {**request.details, "video_faces": any(a["kind"] == "video" for a in best),
                       "person": {"case": case, "label": row["label"], "appearances": provenance,
                                  "best_faces": [a["face_id"] for a in best], "cohesion": person["cohesion"],
                                  "model": case_model(ws, case)}}

    def prepared(hashes: list[str]) -> probes.ProbeSet:
        faces = []
        for a in best:
            image_row = ws.conn.execute("SELECT image_path, embedding, face_index FROM case_faces WHERE id = ?",
                                        (a["face_id"],)).fetchone()
            data = (ws.home / image_row["image_path"]).read_bytes()
            hashes.append(a["image_sha256"])
            q = a["quality"]
            face = Face(index=image_row["face_index"], box=tuple(a["box"]), size_px=q["size_px"],
                        eye_distance_px=q["eye_distance_px"], sharpness=q["sharpness"],
                        detector_score=q.get("detector_score"),
                        embedding=blob_to_embedding(image_row["embedding"]).copy())
            faces.append(probes.ProbeFace(face, data, a["image_sha256"], Path(image_row["image_path"]).suffix,
                                          a["file"], time_s=a["time_s"], faces_in_image=a.get("faces_in_image", 0)))
        where = ", ".join(f"{a['file']}" + (f" at {a['time_s']:.1f} s" if a["time_s"] is not None else "")
                          for a in best)
        return probes.ProbeSet(
            kind="person", faces=faces, source_sha256=best[0]["sha256"], source_name=f"person {row['label']}",
            description=(f"person {row['label']} of case {case}: best {len(faces)} of {len(person['appearances'])} "
                         f"appearances in {person['files']} files ({where})"),
            flags=[f"case person {row['label']}: faces grouped by leadmatch across {person['files']} files "
                   f"(threshold {GROUPING_THRESHOLD}); the grouping is itself a lead, not an identification"])

    return searching.run(ws, actor, request, prepared=prepared)
