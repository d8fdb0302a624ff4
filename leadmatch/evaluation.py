"""Accuracy on the user's own labeled photos, as NIST's 1:N evaluations measure it.

For each subject the first N photos (by path) form a temporary gallery; the rest are mated probes. A fraction
of subjects is held out of the gallery entirely; their photos are non-mated probes. Everything runs through the
real pipeline (quality gates, FAISS index, exact re-ranking) in a throw-away workspace.

- rank-k hit rate: mated probes whose first true mate is at rank ≤ k.
- FNIR(T): mated probes whose true mate is not among the candidates (rank ≤ 20) with distance < T.
- FPIR(T): non-mated probes whose rank-1 candidate has distance < T (someone would be "within threshold").
"""

from __future__ import annotations

import csv
import random
import secrets
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from . import accounts, index, leads, quality
from .enrollment import Item, collect, enroll
from .errors import InputError, PhotoError
from .faces import analyze_bytes
from .gallery import create as create_gallery
from .photos import read_bytes
from .search import rank_candidates
from .workspace import init

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


def evaluate(source: Path, enroll_first: int = 1, holdout: float = 0.2, labels: Path | None = None,
             seed: int = 0, progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the evaluation; return counts, rates and the distances behind them (see module docstring)."""
    items, layout_refusals = collect(source)
    attributes = read_labels(labels) if labels else {}
    gallery_items, mated, nonmated, held = split(items, enroll_first, holdout, seed)
    if not gallery_items:
        raise InputError(f"no gallery photos in {source}", "give at least one subject that is not held out")
    refused = [{"path": r.path, "reason": r.reason, "detail": r.detail} for r in layout_refusals]
    with tempfile.TemporaryDirectory(prefix="leadmatch-eval-") as temp:
        ws, _ = init(Path(temp))
        admin = accounts.create_first_admin(ws, "evaluation-admin", secrets.token_urlsafe(16))
        analyst = accounts.add_user(ws, admin, "evaluation", ["analyst"], secrets.token_urlsafe(16))
        create_gallery(ws, analyst, "evaluation", authority="evaluation only", approved_by="leadmatch evaluate",
                       approved_on="2026-01-01", source=str(source), retention_days=1)
        manifest = Path(temp) / "gallery.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "subject"])
            writer.writerows([[str(i.path.resolve()), i.subject] for i in gallery_items])
        report = enroll(ws, analyst, "evaluation", manifest, workers=1)
        refused += [{"path": r.path, "reason": r.reason, "detail": r.detail} for r in report.refused]
        gallery_row = ws.conn.execute("SELECT id FROM galleries WHERE name = 'evaluation'").fetchone()
        loaded = index.load(ws.conn, ws.indexes, gallery_row[0], index.EXACT)
        enrolled_subjects = {r[0] for r in ws.conn.execute("SELECT name FROM subjects")}
        outcomes = []
        probes = [(i, True) for i in mated] + [(i, False) for i in nonmated]
        for done, (item, is_mated) in enumerate(probes, start=1):
            if is_mated and item.subject not in enrolled_subjects:
                refused.append({"path": str(item.path), "reason": "no-gallery-photo",
                                "detail": f"every gallery photo of {item.subject} was refused"})
                continue
            outcome = _search(ws, loaded.index, item, is_mated)
            (refused if "reason" in outcome else outcomes).append(outcome)
            if progress:
                progress(done, len(probes))
        ws.close()
    result = summarize(outcomes, attributes)
    result.update(refused=refused, holdout_subjects=held, enroll_first=enroll_first,
                  gallery_photos=report.enrolled, candidates=CANDIDATES)
    return result


def _search(ws, faiss_index, item: Item, is_mated: bool) -> dict:
    """One probe through the real pipeline: a refusal, or the mate's rank and distances."""
    try:
        found = analyze_bytes(read_bytes(item.path), str(item.path), min_face_px=quality.PROBE_DETECT_MIN_PX)
    except PhotoError as exc:
        return {"path": str(item.path), "reason": exc.reason, "detail": exc.message}
    if len(found.faces) != 1:
        return {"path": str(item.path), "reason": "no-face" if not found.faces else "multiple-faces",
                "detail": f"{len(found.faces)} faces; an evaluation probe must show exactly one"}
    face = found.faces[0]
    if quality.PROBE.shortfalls(face):
        return {"path": str(item.path), "reason": "low-quality", "detail": "; ".join(quality.PROBE.shortfalls(face))}
    ranked = rank_candidates(ws, faiss_index, face.embedding, CANDIDATES, leads.DEFAULT_THRESHOLD)
    mate = next((c for c in ranked if c["subject"] == item.subject), None) if is_mated else None
    return {"path": str(item.path), "subject": item.subject, "mated": is_mated,
            "mate_rank": mate["rank"] if mate else None, "mate_distance": mate["distance"] if mate else None,
            "top_distance": ranked[0]["distance"] if ranked else None}


def summarize(outcomes: list[dict], attributes: dict | None = None) -> dict:
    """Rates and thresholds over probe outcomes, overall and per label group."""
    result = _rates(outcomes)
    if attributes:
        groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for outcome in outcomes:
            for attribute, value in attributes.get(outcome["subject"], {}).items():
                groups[attribute][value].append(outcome)
        result["groups"] = {attribute: {value: _rates(rows) for value, rows in sorted(values.items())}
                            for attribute, values in sorted(groups.items())}
    return result


def _rates(outcomes: list[dict]) -> dict:
    mated = [o for o in outcomes if o["mated"]]
    nonmated = [o for o in outcomes if not o["mated"]]
    top = np.array(sorted(o["top_distance"] for o in nonmated if o["top_distance"] is not None))

    def rank_rate(k):
        hits = sum(1 for o in mated if o["mate_rank"] is not None and o["mate_rank"] <= k)
        return None if not mated else round(hits / len(mated), 4), hits

    def fnir(threshold):
        misses = sum(1 for o in mated if o["mate_distance"] is None or o["mate_distance"] >= threshold)
        return None if not mated else round(misses / len(mated), 4), misses

    def fpir(threshold):
        alarms = int((top < threshold).sum())
        return None if not len(top) else round(alarms / len(top), 4), alarms

    out = {"mated_probes": len(mated), "nonmated_probes": len(nonmated)}
    for k in (1, 5, 20):
        out[f"rank{k}"], out[f"rank{k}_hits"] = rank_rate(k)
    out["fnir_at_fpir"] = {}
    for target in FPIR_TARGETS:
        key = str(target)
        if len(top) < round(1 / target) or not mated:
            out["fnir_at_fpir"][key] = {"fnir": None, "threshold": None, "note":
                                        f"needs at least {round(1 / target)} non-mated and 1 mated probe; "
                                        f"have {len(top)} and {len(mated)}"}
            continue
        allowed = int(np.floor(target * len(top)))  # false alarms allowed at this FPIR
        threshold = float(top[allowed])  # strictly below this distance: exactly `allowed` non-mated alarms
        rate, misses = fnir(threshold)
        out["fnir_at_fpir"][key] = {"fnir": rate, "misses": misses, "threshold": round(threshold, 4),
                                    "fpir": fpir(threshold)[0]}
    (f_rate, f_miss), (p_rate, p_alarm) = fnir(leads.DEFAULT_THRESHOLD), fpir(leads.DEFAULT_THRESHOLD)
    out["default_threshold"] = {"threshold": leads.DEFAULT_THRESHOLD, "fnir": f_rate, "fnir_misses": f_miss,
                                "fpir": p_rate, "fpir_alarms": p_alarm}
    out["det"] = det_points(mated, top)
    return out


def det_points(mated: list[dict], top: np.ndarray) -> list[dict]:
    """(threshold, FPIR, FNIR) at every distinct observed distance: the DET curve."""
    distances = sorted({o["mate_distance"] for o in mated if o["mate_distance"] is not None} | set(top.tolist()))
    points = []
    for t in distances + [max(distances, default=0) + 1e-6]:
        misses = sum(1 for o in mated if o["mate_distance"] is None or o["mate_distance"] >= t)
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
