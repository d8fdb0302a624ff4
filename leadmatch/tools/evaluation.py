"""Accuracy on the user's own labeled photos, as NIST's 1:N evaluations (FRTE) measure it.

For each subject the first N photos (by path) form a temporary gallery; the rest are mated probes. A fraction
of subjects is held out of the gallery entirely; their photos are non-mated probes. Everything runs through the
real pipeline (gallery and probe quality gates, FAISS index, gallery calibration, exact re-ranking) in a
throw-away workspace.

Refusals are failures to template and count as misses, as in FRTE: a mated probe refused at search time, or
whose subject's every gallery photo was refused, is a miss in the headline rates. The rates over accepted
probes only are given beside them, and every refusal is tabled by stage and reason.

- rank-k hit rate: mated probes whose true mate is at rank ≤ k (by photo: the face list; by subject: the list
  with one entry per subject, at its nearest face).
- FNIR(T): mated probes whose true mate is not among the candidates (rank ≤ 20) with distance < T.
- FPIR(T): accepted non-mated probes whose rank-1 candidate has distance < T (someone would be "within
  threshold"). Measured at the gallery's calibrated threshold beside the calibration's own estimate.
"""

from __future__ import annotations

import csv
import random
import secrets
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from leadmatch.lazy import lazy

from leadmatch.governance import accounts
from leadmatch.gallery import calibration, index, space as spaces
from leadmatch.search import leads
from leadmatch.biometrics import faceres, quality
from leadmatch.gallery.enrollment import Item, collect, enroll
from leadmatch.errors import FaceChoiceNeeded, InputError, PhotoError, Refused
from leadmatch.gallery.galleries import create as create_gallery
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, decode
from leadmatch.gallery.sources import Confinement
from leadmatch.search import probes as probe_pipeline
from leadmatch.search.run import rank_candidates
from leadmatch.record.workspace import init

np = lazy("numpy")

CANDIDATES = 20
FPIR_TARGETS = (0.1, 0.01)


def split(items: list[Item], enroll_first: int, holdout: float, seed: int) -> tuple[list, list, list, list[str]]:
    """(gallery items, mated probes, non-mated probes, held-out subjects), deterministic for a seed."""
    if enroll_first < 1:
        raise InputError("--enroll-first must be at least 1", "give how many photos per subject to enroll")
    if not 0 <= holdout < 1:
        raise InputError(f"--holdout-subjects {holdout} is out of range", "give a fraction from 0 to below 1")
    by_subject: dict[str, list[Item]] = defaultdict(list)
    for item in sorted(items, key=lambda i: (i.subject, str(i.path))):
        by_subject[item.subject].append(item)
    subjects = sorted(by_subject)
    held = sorted(random.Random(seed).sample(subjects, round(holdout * len(subjects))))
    gallery, mated, nonmated = [], [], []
    for subject in subjects:
        photos = by_subject[subject]
        if subject in held:
            nonmated.extend(photos)
        else:
            gallery.extend(photos[:enroll_first])
            mated.extend(photos[enroll_first:])
    return gallery, mated, nonmated, held


def distractor_items(folder: Path, enroll_first: int = 1) -> list[Item]:
    """Photos of people outside the labeled set, to enlarge the gallery: each sub-folder of `folder` is one
    person (its first `enroll_first` photos by name), each photo directly in it another. Subjects are named
    `distractor:<name>` so none can be taken for a labeled subject."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--distractors {folder} is not a folder", "give a folder of <person>/<photos> or photos")
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            photos = sorted(p for p in entry.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
            out += [Item(p, f"distractor:{entry.name}") for p in photos[:enroll_first]]
        elif entry.suffix.lower() in PHOTO_SUFFIXES:
            out.append(Item(entry, f"distractor:{entry.stem}"))
    if not out:
        raise InputError(f"no photos found in --distractors {folder}", "give a folder of <person>/<photos> or photos")
    return out


def evaluate(source: Path, enroll_first: int = 1, holdout: float = 0.2, labels: Path | None = None,
             seed: int = 0, progress: Callable[[int, int], None] | None = None, face: str | None = None,
             workers: int | None = None, root: Path | None = None, model: str = spaces.DEFAULT_MODEL,
             distractors: Path | None = None) -> dict:
    """Run the evaluation; return counts, rates and the distances behind them (see module docstring).

    `face` ("largest" or "central") picks one face in probes that show several; without it such a probe is
    refused. `workers` sets the enrollment's worker processes (default: all cores). Only photos inside `root`
    (the service's enroll root; default: the folder `source`) are read, as in `enrollment.enroll`. `model` is
    the gallery's face model; `distractors` a folder of people outside the labeled set added to the gallery
    (direct mode only; the output states the gallery's size in subjects).
    """
    if face is not None and face not in probe_pipeline.FACE_CHOICES:
        raise InputError(f"--face {face!r} is not known", f"use one of: {', '.join(probe_pipeline.FACE_CHOICES)}")
    model = spaces.validate(model)
    extra = distractor_items(distractors, enroll_first) if distractors else []
    items, layout_refusals = collect(source)
    confinement = Confinement.of(source, root, None)
    attributes = read_labels(labels) if labels else {}
    gallery_items, mated, nonmated, held = split(items, enroll_first, holdout, seed)
    if not gallery_items:
        raise InputError(f"no gallery photos in {source}", "give at least one subject that is not held out")
    refused = [{"stage": "layout", "path": r.path, "reason": r.reason, "detail": r.detail} for r in layout_refusals]
    with tempfile.TemporaryDirectory(prefix="leadmatch-eval-") as temp:
        ws, _ = init(Path(temp))
        admin = accounts.create_first_admin(ws, "evaluation-admin", secrets.token_urlsafe(16))
        analyst = accounts.add_user(ws, admin, "evaluation", ["analyst"], secrets.token_urlsafe(16))
        create_gallery(ws, analyst, "evaluation", authority="evaluation only", approved_by="leadmatch evaluate",
                       approved_on="2026-01-01", source=str(source), retention_days=1, model=model)
        manifest = Path(temp) / "gallery.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "subject"])
            writer.writerows([[str(i.path.resolve()), i.subject] for i in gallery_items + extra])
        # the rows are resolved paths, checked again there; distractors lie elsewhere by nature (direct mode)
        report = enroll(ws, analyst, "evaluation", manifest, workers=workers,
                        root=None if extra else confinement.root or Path("/"))
        refused += [{"stage": "gallery", "path": r.path, "reason": r.reason, "detail": r.detail}
                    for r in report.refused]
        gallery_id = ws.conn.execute("SELECT id FROM galleries WHERE name = 'evaluation'").fetchone()[0]
        loaded = index.load(ws.conn, ws.indexes, gallery_id, index.EXACT)
        calibrated = calibration.load(ws.conn, gallery_id) or calibration.calibrate(ws.conn, gallery_id, loaded.index)
        space = spaces.of_gallery(ws.conn, gallery_id)
        gallery_subjects = ws.conn.execute("SELECT count(*) FROM subjects").fetchone()[0]
        gallery_flagged = ws.conn.execute("SELECT count(*) FROM faces WHERE quality_flags != '[]'").fetchone()[0]
        enrolled_subjects = {r[0] for r in ws.conn.execute("SELECT name FROM subjects")}
        outcomes = []
        probes = [(i, True) for i in mated] + [(i, False) for i in nonmated]
        for done, (item, is_mated) in enumerate(probes, start=1):
            if is_mated and item.subject not in enrolled_subjects:
                outcome = {"path": str(item.path), "subject": item.subject, "mated": True, "stage": "gallery",
                           "reason": "no-gallery-photo", "detail": f"every gallery photo of {item.subject} was refused"}
            else:
                outcome = _search(ws, loaded.index, item, is_mated, face, calibrated, confinement, space)
            outcomes.append(outcome)
            if progress:
                progress(done, len(probes))
        ws.close()
    result = summarize(outcomes, attributes, calibrated)
    refused += [o for o in outcomes if "reason" in o]
    result.update(refused=refused, refusals_by_reason=refusals_by_reason(refused), holdout_subjects=held,
                  enroll_first=enroll_first, candidates=CANDIDATES, face_choice=face,
                  model=model,
                  gallery={"photos_offered": len(gallery_items) + len(extra), "enrolled": report.enrolled,
                           "subjects": gallery_subjects, "distractor_photos": len(extra),
                           "refused": len(report.refused), "flagged": gallery_flagged,
                           "refusal_rate": round(len(report.refused) / max(1, len(gallery_items)), 4)},
                  gallery_photos=report.enrolled)
    return result


def _search(ws, faiss_index, item: Item, is_mated: bool, choice: str | None,
            calibrated: calibration.Calibration, confinement: Confinement, space: spaces.Space | None = None) -> dict:
    """One probe (read only where `confinement` allows) through the real pipeline: a refusal, or the mate's rank
    and distances."""
    base = {"path": str(item.path), "subject": item.subject, "mated": is_mated}
    space = space or spaces.Space()
    try:
        data = confinement.read(item.path)
        face, _ = probe_pipeline.probe_face(data, str(item.path), choice)  # as a search picks and gates it
    except FaceChoiceNeeded as several:
        return base | {"stage": "probe", "reason": "multiple-faces",
                       "detail": f"{len(several.faces)} faces; pick one with --face largest|central"}
    except Refused as low:  # the gate's message ends with the measured shortfalls
        return base | {"stage": "probe", "reason": "low-quality", "detail": low.message.rpartition("quality: ")[2]}
    except PhotoError as exc:
        return base | {"stage": "probe", "reason": exc.reason, "detail": exc.message}
    # by photo, so the mate's rank among photos and (derived) among subjects both come from one list
    vector = face.embedding
    if space.fused:
        described = faceres.describe(decode(data, name=str(item.path)).pixels, [face.box])
        vector = space.vectors(face.embedding, described)[0]
    ranked = rank_candidates(ws, faiss_index, vector, CANDIDATES, calibrated.threshold, calibrated,
                             per_photo=True, space=space)
    return base | outcome_from_ranking([(c["subject"], c["distance"]) for c in ranked], item.subject, is_mated,
                                       flagged=bool(quality.PROBE.warnings(face)))


def outcome_from_ranking(ranked: list[tuple[str, float]], subject: str, is_mated: bool, flagged: bool = False) -> dict:
    """The mate's rank by photo and by subject, its distance, and the rank-1 distance, from a ranked list of
    (subject, distance)."""
    mate_rank = mate_distance = mate_subject_rank = None
    seen: list[str] = []
    for rank, (name, distance) in enumerate(ranked, start=1):
        if name not in seen:
            seen.append(name)
        if is_mated and name == subject and mate_rank is None:
            mate_rank, mate_distance, mate_subject_rank = rank, distance, len(seen)
    return {"mate_rank": mate_rank, "mate_subject_rank": mate_subject_rank, "mate_distance": mate_distance,
            "top_distance": ranked[0][1] if ranked else None, "flagged": flagged}


def refusals_by_reason(refused: list[dict]) -> dict[str, dict[str, int]]:
    """{stage: {reason: count}} over every refusal (layout, gallery, probe)."""
    table: dict[str, Counter] = defaultdict(Counter)
    for r in refused:
        table[r.get("stage", "probe")][r["reason"]] += 1
    return {stage: dict(sorted(counts.items())) for stage, counts in sorted(table.items())}


def summarize(outcomes: list[dict], attributes: dict | None = None,
              calibrated: calibration.Calibration | None = None) -> dict:
    """Rates and thresholds over probe outcomes (refusals included, marked by a `reason`), overall and per
    label group; with `calibrated`, the measured FPIR at its threshold beside its estimate."""
    result = _rates(outcomes, calibrated)
    if attributes:
        groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for outcome in outcomes:
            for attribute, value in attributes.get(outcome["subject"], {}).items():
                groups[attribute][value].append(outcome)
        result["groups"] = {attribute: {value: _rates(rows, calibrated) for value, rows in sorted(values.items())}
                            for attribute, values in sorted(groups.items())}
    return result


def _rate(hits: int, total: int) -> float | None:
    return None if not total else round(hits / total, 4)


def _rates(outcomes: list[dict], calibrated: calibration.Calibration | None = None) -> dict:
    every_mated = [o for o in outcomes if o["mated"]]
    mated = [o for o in every_mated if "reason" not in o]  # accepted: searched
    nonmated = [o for o in outcomes if not o["mated"] and "reason" not in o]
    top = np.array(sorted(o["top_distance"] for o in nonmated if o["top_distance"] is not None))

    def hits(rows, k, key="mate_rank"):
        return sum(1 for o in rows if o.get(key) is not None and o[key] <= k)

    def misses(rows, threshold):
        return sum(1 for o in rows if o.get("mate_distance") is None or o["mate_distance"] >= threshold)

    def fpir(threshold):
        alarms = int((top < threshold).sum())
        return _rate(alarms, len(top)), alarms

    out = {"mated_probes": len(every_mated), "mated_accepted": len(mated),
           "mated_refused": len(every_mated) - len(mated), "nonmated_probes": len(nonmated),
           "nonmated_refused": sum(1 for o in outcomes if not o["mated"] and "reason" in o),
           "probes_flagged_low_quality": sum(1 for o in mated + nonmated if o.get("flagged"))}
    for k in (1, 5, 20):
        # headline: by subject, as candidate lists are, with refusals counted as misses (FRTE); beside it the
        # rank among gallery photos (`--per-photo` lists) and the rate over accepted probes only
        by_subject = hits(every_mated, k, "mate_subject_rank")
        out[f"rank{k}"], out[f"rank{k}_hits"] = _rate(by_subject, len(every_mated)), by_subject
        out[f"rank{k}_accepted"] = _rate(hits(mated, k, "mate_subject_rank"), len(mated))
        out[f"rank{k}_by_photo"] = _rate(hits(every_mated, k), len(every_mated))
    out["fnir_at_fpir"] = {}
    for target in FPIR_TARGETS:
        key = str(target)
        if len(top) < round(1 / target) or not every_mated:
            out["fnir_at_fpir"][key] = {"fnir": None, "threshold": None, "note":
                                        f"needs at least {round(1 / target)} non-mated and 1 mated probe; "
                                        f"have {len(top)} and {len(every_mated)}"}
            continue
        allowed = int(np.floor(target * len(top)))  # false alarms allowed at this FPIR
        threshold = float(top[allowed])  # strictly below this distance: exactly `allowed` non-mated alarms
        out["fnir_at_fpir"][key] = {"fnir": _rate(misses(every_mated, threshold), len(every_mated)),
                                    "misses": misses(every_mated, threshold),
                                    "fnir_accepted": _rate(misses(mated, threshold), len(mated)),
                                    "threshold": round(threshold, 4), "fpir": fpir(threshold)[0]}
    (p_rate, p_alarm) = fpir(leads.DEFAULT_THRESHOLD)
    out["default_threshold"] = {"threshold": leads.DEFAULT_THRESHOLD,
                                "fnir": _rate(misses(every_mated, leads.DEFAULT_THRESHOLD), len(every_mated)),
                                "fnir_misses": misses(every_mated, leads.DEFAULT_THRESHOLD),
                                "fpir": p_rate, "fpir_alarms": p_alarm}
    if calibrated is not None:
        t = calibrated.threshold
        (m_rate, m_alarm) = fpir(t)
        out["calibrated_threshold"] = calibrated.summary() | {
            "estimated_fpir": round(calibrated.fpir_at(t), 4), "measured_fpir": m_rate, "measured_alarms": m_alarm,
            "nonmated_probes": len(top), "fnir": _rate(misses(every_mated, t), len(every_mated)),
            "fnir_misses": misses(every_mated, t), "fnir_accepted": _rate(misses(mated, t), len(mated)),
            "estimated_fpir_at_default": round(calibrated.fpir_at(leads.DEFAULT_THRESHOLD), 4)}
    out["det"] = det_points(every_mated, top)
    return out


def det_points(mated: list[dict], top: np.ndarray) -> list[dict]:
    """(threshold, FPIR, FNIR) at every distinct observed distance: the DET curve."""
    distances = sorted({o["mate_distance"] for o in mated if o.get("mate_distance") is not None} | set(top.tolist()))
    points = []
    for t in distances + [max(distances, default=0) + 1e-6]:
        misses = sum(1 for o in mated if o.get("mate_distance") is None or o["mate_distance"] >= t)
        points.append({"threshold": round(t, 4), "fpir": float((top < t).mean()) if len(top) else None,
                       "fnir": misses / len(mated) if mated else None})
    return points


def read_labels(path: Path) -> dict[str, dict[str, str]]:
    """subject → {attribute: value} from a CSV with a `subject` column and one column per attribute."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputError(f"cannot read labels {path}: {exc.strerror}", "check the path") from None
    if not rows or "subject" not in rows[0]:
        raise InputError(f"labels {path} need a subject column", "header: subject,<attribute>,…")
    return {r["subject"]: {k: v for k, v in r.items() if k != "subject" and v} for r in rows}


def plot_det(result: dict, path: Path) -> dict:
    """Write the DET curve (FNIR against FPIR, log axes) as a PNG; return the axes' description."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in result["det"] if p["fpir"] is not None and p["fnir"] is not None]
    if not points:
        raise InputError("no DET curve: the evaluation needs both mated and non-mated probes",
                         "lower --enroll-first or raise --holdout-subjects")
    floor = 1e-3  # zero rates cannot sit on a log axis; they are drawn at the floor
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    ax.step([max(p["fpir"], floor) for p in points], [max(p["fnir"], floor) for p in points], where="post")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.05)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("FPIR (false positive identification rate)")
    ax.set_ylabel("FNIR (false negative identification rate)")
    ax.set_title(f"DET — {result['mated_probes']} mated, {result['nonmated_probes']} non-mated probes")
    ax.grid(True, which="both", alpha=0.3)
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temp, format="png")
    plt.close(fig)
    temp.replace(path)
    return {"xscale": ax.get_xscale(), "yscale": ax.get_yscale(), "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel()}
