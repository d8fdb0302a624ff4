"""Accuracy on lfw-dev, at full resolution and degraded, against raw face_recognition on the same photos.

The protocol is `leadmatch evaluate`'s (first photo of each person in the gallery, the rest mated probes, 20 %
of people held out as non-mated probes, seed 0), replayed from embeddings cached once by `lfw_cache.py` so the
gates and thresholds can be studied without re-running dlib. Every decision goes through the library's own
functions: `quality.gallery_decision` (what enrollment keeps), `quality.PROBE` (what a search refuses or
flags), `evaluation.choose_probe_face`, the FAISS index, `calibration` (the gallery's threshold) and
`evaluation.summarize` (the rates). Gallery photos are always full resolution; probes are degraded.

raw face_recognition: every photo's face nearest the centre (HOG, one upsampling, its defaults), no gates; a
photo where it finds no face is a miss.

    python accuracy.py            # tables → results/accuracy.{json,md} and results/quality-bins.{json,md}
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save  # noqa: E402
from lfw_cache import CONDITIONS, LFW_DEV, load  # noqa: E402

from leadmatch import calibration, evaluation, index, leads, quality  # noqa: E402
from leadmatch.enrollment import collect  # noqa: E402
from leadmatch.faces import Face  # noqa: E402

SEED, HOLDOUT, ENROLL_FIRST = 0, 0.2, 1


def faces_by_photo(cache: dict, mode: str) -> dict[int, list[Face]]:
    """photo number → its faces found in `mode` ("gallery", "probe" or "raw"), as leadmatch Faces."""
    out: dict[int, list[Face]] = defaultdict(list)
    for row in np.flatnonzero(cache["mode"] == mode):
        out[int(cache["photo"][row])].append(Face(
            index=int(cache["face"][row]), box=tuple(int(v) for v in cache["box"][row]), size_px=int(cache["size"][row]),
            eye_distance_px=float(cache["eyes"][row]), sharpness=float(cache["sharp"][row]),
            detector_score=float(cache["score"][row]), embedding=cache["emb"][row]))
    return out


class Protocol:
    """The evaluation split of lfw-dev, by photo number in the cache."""

    def __init__(self, cache: dict):
        items, _ = collect(LFW_DEV)
        number = {p: n for n, p in enumerate(cache["paths"].tolist())}
        gallery, mated, nonmated, self.held = evaluation.split(items, ENROLL_FIRST, HOLDOUT, SEED)
        self.gallery = [(number[str(i.path)], i.subject) for i in gallery]
        self.probes = [(number[str(i.path)], i.subject, True) for i in mated] + \
                      [(number[str(i.path)], i.subject, False) for i in nonmated]
        self.sizes = cache["sizes"]


def enroll_gallery(protocol: Protocol, full: dict, raw: bool = False):
    """(face embeddings, subject of each, gallery refusals, flagged count) as enrollment would leave them."""
    gallery_faces, probe_faces = faces_by_photo(full, "raw" if raw else "gallery"), faces_by_photo(full, "probe")
    vectors, subjects, refusals, flagged = [], [], [], 0
    for photo, subject in protocol.gallery:
        if raw:
            found = gallery_faces.get(photo, [])
            if not found:
                refusals.append({"stage": "gallery", "reason": "no-face"})
                continue
            face = min(found, key=lambda f: quality.centre_offset(f.box, *protocol.sizes[photo]))
        else:
            found = gallery_faces.get(photo) or probe_faces.get(photo, [])  # enrollment's second look
            face, flags, refusal = quality.gallery_decision(found, *protocol.sizes[photo])
            if refusal:
                refusals.append({"stage": "gallery", "reason": refusal[0]})
                continue
            flagged += bool(flags)
        vectors.append(face.embedding)
        subjects.append(subject)
    return np.array(vectors, np.float32), subjects, refusals, flagged


def calibrate(vectors: np.ndarray, subjects: list[str], target: float = calibration.DEFAULT_TARGET_FPIR):
    """The gallery's calibration, through a real FAISS index, as `index.build_gallery` makes it."""
    ids = np.arange(len(vectors), dtype=np.int64)
    built = index.build(ids, vectors, "Flat")
    subject_id = {s: n for n, s in enumerate(sorted(set(subjects)))}
    of = {int(i): subject_id[s] for i, s in zip(ids, subjects)}
    first = {}
    for i, s in zip(ids, subjects):
        first.setdefault(s, int(i))
    queries = np.array([first[s] for s in sorted(first)], dtype=np.int64)
    distances = calibration.nearest_other(built, vectors[queries], np.array([of[int(q)] for q in queries]), of,
                                          lambda wanted: vectors[wanted])
    return built, calibration.from_distances(distances, len(first), target)


def run(protocol: Protocol, full: dict, probes: dict, raw: bool = False, choice: str | None = "central",
        gates: quality.QualityRule | None = None) -> dict:
    """One evaluation: leadmatch (gates on) or raw face_recognition, probes from `probes`' cache."""
    gates = gates or quality.PROBE
    vectors, subjects, gallery_refusals, flagged = enroll_gallery(protocol, full, raw)
    built, calibrated = calibrate(vectors, subjects)
    enrolled = set(subjects)
    probe_faces = faces_by_photo(probes, "raw" if raw else "probe")
    outcomes = []
    for photo, subject, mated in protocol.probes:
        base = {"subject": subject, "mated": mated, "path": str(photo)}
        found = probe_faces.get(photo, [])
        width, height = protocol.sizes[photo]
        if mated and subject not in enrolled:
            outcomes.append(base | {"stage": "gallery", "reason": "no-gallery-photo"})
            continue
        if not found:
            outcomes.append(base | {"stage": "probe", "reason": "no-face"})
            continue
        face = (min(found, key=lambda f: quality.centre_offset(f.box, width, height)) if raw
                else evaluation.choose_probe_face(found, choice, width, height))
        if face is None:
            outcomes.append(base | {"stage": "probe", "reason": "multiple-faces"})
            continue
        if not raw and gates.shortfalls(face):
            outcomes.append(base | {"stage": "probe", "reason": "low-quality"})
            continue
        squared, ids = built.search(face.embedding[None], evaluation.CANDIDATES)
        ranked = [(subjects[i], float(np.sqrt(max(d, 0)))) for d, i in zip(squared[0], ids[0]) if i >= 0]
        outcomes.append(base | evaluation.outcome_from_ranking(ranked, subject, mated,
                                                               flagged=not raw and bool(gates.warnings(face))))
    result = evaluation.summarize(outcomes, None, calibrated)
    result["refusals_by_reason"] = evaluation.refusals_by_reason(gallery_refusals + [o for o in outcomes if "reason" in o])
    result["gallery"] = {"offered": len(protocol.gallery), "refused": len(gallery_refusals), "flagged": flagged,
                         "refusal_rate": round(len(gallery_refusals) / len(protocol.gallery), 4)}
    result["outcomes"] = outcomes
    return result


def row(name: str, condition: str, r: dict) -> dict:
    """One line of the accuracy table."""
    pct = lambda v: None if v is None else round(100 * v, 1)  # noqa: E731
    c = r["calibrated_threshold"]
    probe_refused = sum(r["refusals_by_reason"].get("probe", {}).values())
    mated_probe_refused = sum(1 for o in r["outcomes"] if o["mated"] and o.get("stage") == "probe")
    return {"system": name, "probes": condition, "rank-1 %": pct(r["rank1"]),
            "rank-1 accepted %": pct(r["rank1_accepted"]), "mated": r["mated_probes"],
            "FNIR@FPIR 1 %": pct(r["fnir_at_fpir"]["0.01"]["fnir"]), "FNIR@FPIR 10 %": pct(r["fnir_at_fpir"]["0.1"]["fnir"]),
            "calibrated threshold": c["threshold"], "FPIR est. %": pct(c["estimated_fpir"]),
            "FPIR measured %": pct(c["measured_fpir"]), "FPIR at 0.6 %": pct(r["default_threshold"]["fpir"]),
            "gallery refused %": pct(r["gallery"]["refusal_rate"]),
            "mated probes refused %": pct(mated_probe_refused / r["mated_probes"]),
            "probes refused": probe_refused, "probes flagged": r["probes_flagged_low_quality"]}


BINS = {"eyes": [0, 10, 14, 17, 20, 24, 28, 34, 100], "size": [0, 40, 52, 60, 70, 80, 100, 400],
        "sharp": [0, 5, 8, 12, 16, 20, 25, 35, 60, 1000]}


def quality_bins(protocol: Protocol, full: dict, caches: dict[str, dict]) -> list[dict]:
    """Rank-1 of mated probes (gallery as enrollment keeps it, no probe gate) by bins of each probe measure,
    pooled over every condition: what each gate's floor and recommended level are chosen from."""
    vectors, subjects, _, _ = enroll_gallery(protocol, full)
    built, _ = calibrate(vectors, subjects)
    enrolled = set(subjects)
    measured = []
    for name, cache in caches.items():
        faces = faces_by_photo(cache, "probe")
        for photo, subject, mated in protocol.probes:
            if not mated or subject not in enrolled or not faces.get(photo):
                continue
            face = evaluation.choose_probe_face(faces[photo], "central", *protocol.sizes[photo])
            _, ids = built.search(face.embedding[None], 1)
            measured.append((face.eye_distance_px, face.size_px, face.sharpness, subjects[ids[0][0]] == subject))
    data = np.array(measured, dtype=np.float64)
    rows = []
    for column, (measure, edges) in enumerate(BINS.items()):
        for low, high in zip(edges, edges[1:]):
            inside = (data[:, column] >= low) & (data[:, column] < high)
            if inside.sum():
                rows.append({"measure": measure, "from": low, "below": high, "probes": int(inside.sum()),
                             "rank-1 %": round(100 * data[inside, 3].mean(), 1)})
    return rows


def main() -> None:
    caches = {name: load(name) for name in CONDITIONS}
    full = caches["full"]
    protocol = Protocol(full)
    rows, notes = [], []
    for condition in ("full", "low", "scale0.7", "scale0.5", "jpeg15", "blur1.5", "blur3"):
        rows.append(row("leadmatch", condition, run(protocol, full, caches[condition])))
        rows.append(row("raw face_recognition", condition, run(protocol, full, caches[condition], raw=True)))
    notes += [f"lfw-dev: {len(protocol.gallery)} gallery photos (first of each person), "
              f"{sum(1 for p in protocol.probes if p[2])} mated and {sum(1 for p in protocol.probes if not p[2])} "
              f"non-mated probes ({len(protocol.held)} people held out, seed {SEED}); gallery photos at full resolution",
              "conditions: " + "; ".join(f"{k}: scale {v[0]}, JPEG {v[1] or 'original'}, blur σ {v[2]} px"
                                         for k, v in CONDITIONS.items()),
              "rank-1 counts refusals and missing gallery photos as misses; 'accepted' is over searched probes only",
              "leadmatch probes with several faces: the central one (evaluate --face central); raw face_recognition: "
              "the face nearest the centre in gallery and probe photos",
              "FPIR est.: the gallery calibration's estimate at its threshold (target 1 %); measured: non-mated "
              "probes whose rank-1 is under it"]
    save("accuracy", "Accuracy on lfw-dev: leadmatch vs raw face_recognition", rows, notes)
    save("quality-bins", "Rank-1 by probe quality bin (lfw-dev mated probes, all conditions pooled, no probe gate)",
         quality_bins(protocol, full, caches),
         ["the gallery as enrollment keeps it; rank-1 over mated probes whose subject is enrolled",
          f"conditions pooled: {', '.join(caches)}"])


if __name__ == "__main__":
    main()
