"""Accuracy on lfw-dev, at full resolution and degraded, against raw face_recognition on the same photos.

The protocol is `leadmatch evaluate`'s (first photo of each person in the gallery, the rest mated probes, 20 %
of people held out as non-mated probes, seed 0), replayed from embeddings cached once by `lfw_cache.py` so the
gates and thresholds can be studied without re-running dlib. Every decision goes through the library's own
functions: `quality.gallery_decision` (what enrollment keeps), `quality.PROBE` (what a search refuses or
flags), `probes.choose` (the pick every search makes), the FAISS index, `calibration` (the gallery's threshold) and
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

from leadmatch.gallery import calibration, index, space as spaces
from leadmatch.search import probes
from leadmatch.tools import evaluation
from leadmatch.biometrics import quality  # noqa: E402
from leadmatch.biometrics.faces import Face  # noqa: E402
from leadmatch.gallery.enrollment import collect  # noqa: E402

SEED, HOLDOUT, ENROLL_FIRST = 0, 0.2, 1


#: The descriptors a row of the table searches with: dlib's; FaceRes alone (unit, 1024-d); or both, fused as a
#: dlib+faceres gallery fuses them (scales fitted to the gallery). `fr` is the crop leadmatch uses, `fr_wide` the
#: JavaScript library's (see lfw_cache.py).
MODELS = ("dlib", "faceres", "dlib+faceres")


def descriptor(cache: dict, row: int, model: str, crop: str = "fr") -> np.ndarray:
    """One cached face's descriptor for `model`: dlib's 128, FaceRes's 1024, or both side by side (unscaled)."""
    if model == "dlib":
        return cache["emb"][row]
    if model == "faceres":
        return cache[crop][row]
    return np.concatenate([cache["emb"][row], cache[crop][row]])


def faces_by_photo(cache: dict, mode: str, model: str = "dlib", crop: str = "fr") -> dict[int, list[Face]]:
    """photo number → its faces found in `mode` ("gallery", "probe" or "raw"), as leadmatch Faces whose
    `embedding` is the `model`'s descriptor (see `descriptor`). "probe" is what a search (and enrollment's
    second look) finds: HOG's faces, or where HOG found none the CNN's second look's."""
    out: dict[int, list[Face]] = defaultdict(list)
    for row in np.flatnonzero(cache["mode"] == mode):
        out[int(cache["photo"][row])].append(Face(
            index=int(cache["face"][row]), box=tuple(int(v) for v in cache["box"][row]), size_px=int(cache["size"][row]),
            eye_distance_px=float(cache["eyes"][row]), sharpness=float(cache["sharp"][row]),
            detector_score=float(cache["score"][row]), embedding=descriptor(cache, row, model, crop)))
    if mode == "probe":
        for photo, found in faces_by_photo(cache, "probe-cnn", model, crop).items():
            out.setdefault(photo, found)
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


def enroll_gallery(protocol: Protocol, full: dict, raw: bool = False, model: str = "dlib", crop: str = "fr"):
    """(face embeddings, subject of each, gallery refusals, flagged count) as enrollment would leave them."""
    gallery_faces = faces_by_photo(full, "raw" if raw else "gallery", model, crop)
    probe_faces = faces_by_photo(full, "probe", model, crop)
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


def weights(model: str, vectors: np.ndarray, subjects: list[str]) -> np.ndarray:
    """Per-dimension factors that turn the model's descriptors into its search vectors: ones, or for the fused
    model the scales a dlib+faceres gallery fits (`space.fit_scales`) on its dlib and FaceRes parts."""
    if model != "dlib+faceres":
        return np.ones(vectors.shape[1], np.float32)
    a, b = spaces.fit_scales(vectors[:, :128], vectors[:, 128:], np.array(subjects))
    return np.concatenate([np.full(128, a, np.float32), np.full(1024, b, np.float32)])


#: Calibration cap of each model: dlib's and the fused model's 1:1 operating points (space.MAX_THRESHOLD);
#: FaceRes alone, studied but never offered, uncapped.
MAX_THRESHOLD = {**spaces.MAX_THRESHOLD, "faceres": 2.0}


def calibrate(vectors: np.ndarray, subjects: list[str], target: float = calibration.DEFAULT_TARGET_FPIR,
              max_threshold: float = calibration.MAX_THRESHOLD):
    """The gallery's calibration, through a real FAISS index, as `index.build_gallery` makes it."""
    ids = np.arange(len(vectors), dtype=np.int64)
    built = index.build(ids, vectors, "Flat")
    subject_id = {s: n for n, s in enumerate(sorted(set(subjects)))}
    of = {int(i): subject_id[s] for i, s in zip(ids, subjects)}
    first = {}
    for i, s in zip(ids, subjects):
        first.setdefault(s, int(i))
    queries = np.array([first[s] for s in sorted(first)], dtype=np.int64)
    distances = calibration.nearest_other(built, vectors[queries], np.array([of[int(q)] for q in queries]),
                                          lambda wanted: [of[int(i)] for i in wanted], lambda wanted: vectors[wanted])
    return built, calibration.from_distances(distances, len(first), target, max_threshold)


def run(protocol: Protocol, full: dict, probe_cache: dict, raw: bool = False, choice: str | None = "central",
        gates: quality.QualityRule | None = None, model: str = "dlib", crop: str = "fr") -> dict:
    """One evaluation: leadmatch (gates on) with `model`'s descriptors, or raw face_recognition, probes from
    `probe_cache` (a condition's cache; `probes` is the module that picks the face)."""
    gates = gates or quality.PROBE
    vectors, subjects, gallery_refusals, flagged = enroll_gallery(protocol, full, raw, model, crop)
    scale = weights(model, vectors, subjects)
    vectors = np.ascontiguousarray(vectors * scale, dtype=np.float32)
    built, calibrated = calibrate(vectors, subjects, max_threshold=MAX_THRESHOLD[model])
    enrolled = set(subjects)
    probe_faces = faces_by_photo(probe_cache, "raw" if raw else "probe", model, crop)
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
                else probes.choose(found, choice, width, height))
        if face is None:
            outcomes.append(base | {"stage": "probe", "reason": "multiple-faces"})
            continue
        if not raw and gates.shortfalls(face):
            outcomes.append(base | {"stage": "probe", "reason": "low-quality"})
            continue
        squared, ids = built.search((face.embedding * scale)[None].astype(np.float32), evaluation.CANDIDATES)
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


BINS = {"eyes": [0, 14, 16, 17, 18, 19, 20, 21, 22, 24, 28, 34, 100],
        "size": [0, 40, 46, 50, 52, 56, 60, 70, 80, 100, 400],
        "sharp": [0, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 35, 60, 1000]}
#: Each measure is binned over probes that are good on the other: face size and eye distance over probes at
#: least GOOD["sharp"] sharp, sharpness over probes at least GOOD["eyes"] px between the eyes, so a blurred
#: large face does not count against large faces, nor a small sharp one against sharpness.
GOOD = {"sharp": 12.0, "eyes": 24.0}
#: A gate refuses below the first bin (walking down from the best, bins merged until they hold FLOOR_PROBES)
#: whose rank-1 is under FLOOR_RANK1 — there a search is more often wrong than right. It flags below the first
#: bin (merged to RECOMMENDED_PROBES) under RECOMMENDED_RANK1, about 5 points under full resolution.
FLOOR_RANK1, FLOOR_PROBES = 50.0, 8
RECOMMENDED_RANK1, RECOMMENDED_PROBES = 90.0, 30


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
            face = probes.choose(faces[photo], "central", *protocol.sizes[photo])
            _, ids = built.search(face.embedding[None], 1)
            measured.append((face.eye_distance_px, face.size_px, face.sharpness, subjects[ids[0][0]] == subject))
    data = np.array(measured, dtype=np.float64)
    good = {"eyes": data[:, 2] >= GOOD["sharp"], "size": data[:, 2] >= GOOD["sharp"], "sharp": data[:, 0] >= GOOD["eyes"]}
    rows = []
    for column, (measure, edges) in enumerate(BINS.items()):
        for low, high in zip(edges, edges[1:]):
            inside = good[measure] & (data[:, column] >= low) & (data[:, column] < high)
            if inside.sum():
                rows.append({"measure": measure, "from": low, "below": high, "probes": int(inside.sum()),
                             "hits": int(data[inside, 3].sum()), "rank-1 %": round(100 * data[inside, 3].mean(), 1)})
    return rows


def _first_under(rows: list[dict], rank1: float, min_probes: int) -> float | None:
    """Walking down from the best bin, merging bins until each holds `min_probes`: the upper edge of the first
    merged bin whose rank-1 is under `rank1`, or None."""
    probes = hits = 0
    upper = None
    for r in rows:
        upper = r["below"] if probes == 0 else upper
        probes, hits = probes + r["probes"], hits + r["hits"]
        if probes >= min_probes:
            if 100 * hits / probes < rank1:
                return upper
            probes = hits = 0
    return None


def suggest_gates(bins: list[dict]) -> dict[str, dict]:
    """Per measure: the floor (refuse below) and recommended level (flag below) the bins earn; where no bin
    falls under the floor rate, the floor is the lowest edge measured (nothing below it was seen)."""
    out = {}
    for measure in BINS:
        rows = sorted((r for r in bins if r["measure"] == measure), key=lambda r: -r["from"])
        floor = _first_under(rows, FLOOR_RANK1, FLOOR_PROBES)
        floor = floor if floor is not None else (rows[-1]["from"] if rows else 0)
        recommended = _first_under(rows, RECOMMENDED_RANK1, RECOMMENDED_PROBES)
        out[measure] = {"floor": floor, "recommended": max(floor, recommended or floor)}
    return out


def main() -> None:
    caches = {name: load(name) for name in CONDITIONS}
    full = caches["full"]
    protocol = Protocol(full)
    rows, notes = [], []
    for condition in CONDITIONS:
        rows.append(row("leadmatch", condition, run(protocol, full, caches[condition])))
        rows.append(row("raw face_recognition", condition, run(protocol, full, caches[condition], raw=True)))
        rows.append(row("leadmatch FaceRes alone", condition, run(protocol, full, caches[condition], model="faceres")))
        rows.append(row("leadmatch dlib+faceres", condition,
                        run(protocol, full, caches[condition], model="dlib+faceres")))
    notes += [f"lfw-dev: {len(protocol.gallery)} gallery photos (first of each person), "
              f"{sum(1 for p in protocol.probes if p[2])} mated and {sum(1 for p in protocol.probes if not p[2])} "
              f"non-mated probes ({len(protocol.held)} people held out, seed {SEED}); gallery photos at full resolution",
              "conditions: " + "; ".join(f"{k}: scale {v[0]}, JPEG {v[1] or 'original'}, blur σ {v[2]} px"
                                         for k, v in CONDITIONS.items()),
              "rank-1 counts refusals and missing gallery photos as misses; 'accepted' is over searched probes only",
              "leadmatch probes with several faces: the central one (evaluate --face central); raw face_recognition: "
              "the face nearest the centre in gallery and probe photos",
              "FPIR est.: the gallery calibration's estimate at its threshold (target 1 %); measured: non-mated "
              "probes whose rank-1 is under it",
              "leadmatch = the dlib model; FaceRes alone: its unit descriptor from the box + 10 % crop (never offered, "
              "shown for comparison); dlib+faceres: the fused model, [a·dlib, b·FR/‖FR‖] with a, b fitted to the "
              "gallery; 'FPIR at 0.6' is dlib's distance scale and means nothing for the other two"]
    save("accuracy", "Accuracy on lfw-dev: leadmatch vs raw face_recognition", rows, notes)
    bins = quality_bins(protocol, full, caches)
    suggested = suggest_gates(bins)
    in_force = {"eyes": (quality.PROBE.min_eye_distance_px, quality.PROBE.recommended_eye_distance_px),
                "size": (quality.PROBE.min_face_px, quality.PROBE.recommended_face_px),
                "sharp": (quality.PROBE.min_sharpness, quality.PROBE.recommended_sharpness)}
    save("quality-bins", "Rank-1 by probe quality bin (lfw-dev mated probes, all conditions pooled, no probe gate)",
         bins, ["the gallery as enrollment keeps it; rank-1 over mated probes whose subject is enrolled; "
                f"bins merged until they hold {FLOOR_PROBES} (floor) or {RECOMMENDED_PROBES} (recommended) probes",
                f"conditions pooled: {', '.join(caches)}",
                f"floor: first bin (from the best down) under {FLOOR_RANK1:g} % rank-1; recommended: first under "
                f"{RECOMMENDED_RANK1:g} %"] +
         [f"{m}: suggested floor {v['floor']}, recommended {v['recommended']}; in force (quality.PROBE) "
          f"{in_force[m][0]:g} / {in_force[m][1]:g}" for m, v in suggested.items()])


if __name__ == "__main__":
    main()
