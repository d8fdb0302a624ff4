"""A threshold calibrated to each gallery, from the gallery itself.

A search for someone who is not enrolled still returns a rank-1 candidate; the question an investigator needs
answered is how often that innocent rank-1 would look as close as the one in front of them. Each time the
index is built or brought in step, leadmatch estimates it from the gallery:

- every subject's best face (widest eye distance, then sharpest) is searched against the gallery, leaving that
  subject out (one batched FAISS search); the distance to the nearest face of any *other* subject is what a
  search for an absent person who looks like that subject would see at rank 1;
- the sorted list of those distances is the estimated impostor rank-1 distribution. Its empirical CDF at a
  distance d is the estimated FPIR at d: the share of searches for an absent person whose rank-1 is closer
  than d;
- the threshold for a target FPIR (default 1 %, settable per gallery) is the distance below which that share
  of the list lies, never above dlib's 1:1 operating point 0.6 (small galleries cannot resolve 1 %).

Assumptions, stated on every output that needs them (README, "Distance, threshold and calibration"): gallery
photos stand in for probes (probes are usually worse, so real distances spread more); one person enrolled
under two subjects shows as a near-zero distance and pulls the threshold down (they are counted as
`possible_duplicates`); the gallery of N−1 people stands in for the gallery of N.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field

from leadmatch.lazy import lazy

from leadmatch.gallery import space as spaces

faiss = lazy("faiss")
np = lazy("numpy")

DEFAULT_TARGET_FPIR = 0.01
#: The threshold never goes above dlib's 1:1 operating point, whatever a small gallery's list says.
MAX_THRESHOLD = 0.6
#: Above this many subjects a seeded sample is measured: 2,000 best faces give the 1 % quantile from 20
#: impostors, and one batched search stays a few seconds at 10M faces.
MAX_SUBJECTS_MEASURED = 2000
#: At most this many points of the sorted list are kept with the build (quantiles beyond it).
CURVE_POINTS = 1000
#: Neighbours asked for per best face; a subject with more faces than this near itself is asked again.
NEIGHBOURS = 16
#: Nearest other subject closer than this: most likely one person enrolled twice (same-person photos of
#: one subject sit 0.3–0.45 apart; photos under 0.2 are near-copies).
DUPLICATE_DISTANCE = 0.2


@dataclass
class Calibration:
    """The gallery's estimated impostor rank-1 distances and the threshold they give for `target_fpir`.

    `curve` is sorted ascending: the nearest-other-subject distance of each measured subject (or quantiles of
    them, at most CURVE_POINTS). `subjects` is the gallery's size, `measured` how many subjects were searched.
    """

    subjects: int
    measured: int
    target_fpir: float
    threshold: float
    limited_by: str | None = None          # "max-threshold" or "too-few-subjects" when the target is not met exactly
    possible_duplicates: int = 0
    curve: list[float] = field(default_factory=list, repr=False)

    def fpir_at(self, distance: float) -> float:
        """Estimated share of searches for an absent person whose rank-1 is closer than `distance`."""
        if not self.curve:
            return 0.0
        return float(np.searchsorted(np.asarray(self.curve), distance, side="left") / len(self.curve))

    def resolution(self) -> float:
        """The smallest non-zero rate this estimate can tell apart: one measured subject in `measured`."""
        return 1.0 / max(1, min(self.measured, len(self.curve) or 1))

    def describe_rate(self, distance: float) -> str:
        """'3 %' — or 'under 0.2 %' when no measured impostor came that close (see `rate_words`)."""
        return rate_words(self.fpir_at(distance), self.resolution())

    def sentence(self) -> str:
        """'threshold 0.41 for 1 % false alarms in this gallery of 856 people' (and why, if not met exactly)."""
        text = (f"threshold {self.threshold:.2f} for {percent(self.target_fpir)} false alarms in this gallery of "
                f"{self.subjects} {'person' if self.subjects == 1 else 'people'}")
        if self.limited_by == "max-threshold":
            text += f" (capped at {self.threshold:g}: estimated false alarms there {self.describe_rate(self.threshold)})"
        elif self.limited_by == "too-few-subjects":
            text += f" (too few people to resolve {percent(self.target_fpir)}: estimate only)"
        return text

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> "Calibration | None":
        """The stored calibration, or None for a build made before calibration existed."""
        if not text:
            return None
        data = json.loads(text)
        return cls(**data) if data else None

    def summary(self) -> dict:
        """What every output shows: threshold, target, gallery size, the sentence (no curve)."""
        return {"threshold": round(self.threshold, 4), "target_fpir": self.target_fpir, "subjects": self.subjects,
                "measured_subjects": self.measured, "limited_by": self.limited_by,
                "possible_duplicates": self.possible_duplicates, "text": self.sentence()}


#: From this estimated false-alarm rate on, strangers commonly come as close: the words say so, lest "100 %"
#: read as a verdict on the candidate.
COMMON_RATE = 0.5


def rate_words(rate: float, resolution: float) -> str:
    """An estimated false-alarm rate as every output words it: '3 %'; 'under 0.2 %' when no measured impostor
    came that close, with 'too few people measured to say lower' when the gallery cannot resolve 1 %; and from
    COMMON_RATE on, that strangers commonly come this close (so the distance is no sign of a match)."""
    if rate == 0:
        coarse = " — too few people measured to say lower" if resolution > 0.01 else ""
        return f"under {percent(resolution)}{coarse}"
    if rate >= COMMON_RATE:
        return f"{percent(rate)} — strangers commonly come this close"
    return percent(rate)


def percent(rate: float) -> str:
    """A rate as a short percentage: 0.03 → '3 %', 0.005 → '0.5 %', 0.00117 → '0.1 %'."""
    value = 100.0 * rate
    if value >= 10 or value == round(value):
        return f"{value:.0f} %"
    return f"{value:.2g} %" if value >= 0.1 else f"{value:.1g} %"


def threshold_for(curve: np.ndarray, target: float, max_threshold: float = MAX_THRESHOLD) -> tuple[float, str | None]:
    """The distance below which a share `target` of `curve` (sorted) lies, and what limited it, if anything.

    Below it lie exactly floor(target·n) of the n measured distances. Capped at MAX_THRESHOLD; with fewer
    than 1/target subjects the smallest distance is all the list can say.
    """
    if len(curve) == 0:
        return max_threshold, "too-few-subjects"
    allowed = int(np.floor(target * len(curve) + 1e-9))
    limited = "too-few-subjects" if allowed == 0 and target * len(curve) < 1 else None
    threshold = float(curve[min(allowed, len(curve) - 1)])
    if threshold > max_threshold:
        return max_threshold, "max-threshold"
    return threshold, limited


def nearest_other(index: faiss.Index, queries: np.ndarray, query_subjects: np.ndarray, subjects_of, vector_of) -> np.ndarray:
    """For each query face, the exact distance to the nearest indexed face of another subject (inf if none).

    `subjects_of(ids)` gives the subject id of each face id; `vector_of(ids)` the stored embeddings, so the
    distances are exact whatever the index type. One batched search, repeated wider only for queries whose
    neighbours all belong to their own subject.
    """
    out = np.full(len(queries), np.inf)
    pending = np.arange(len(queries))
    k = NEIGHBOURS
    while len(pending):
        _, found = index.search(np.ascontiguousarray(queries[pending], dtype=np.float32), min(k, index.ntotal))
        wanted = np.unique(found[found >= 0])
        subject = dict(zip(wanted.tolist(), subjects_of(wanted)))
        vectors = dict(zip(wanted.tolist(), vector_of(wanted))) if len(wanted) else {}
        retry = []
        for q, row in zip(pending, found):
            others = [int(f) for f in row if f >= 0 and subject.get(int(f)) not in (None, query_subjects[q])]
            if others:
                out[q] = min(float(np.linalg.norm(vectors[f] - queries[q])) for f in others)
            else:
                retry.append(q)
        if k >= index.ntotal:
            break
        pending, k = np.array(retry, dtype=np.int64), k * 8
    return out


def calibrate(conn: sqlite3.Connection, gallery_id: int, index: faiss.Index, target: float | None = None) -> Calibration:
    """Measure the gallery's impostor rank-1 distances through `index` and derive the threshold for `target`
    (the gallery's own setting, else 1 %). Reads one row per subject and the faces the search returns, so it
    stays cheap on galleries of millions of faces."""
    target = target if target is not None else target_fpir(conn, gallery_id)
    # the best face stands for each subject: widest eye distance, then sharpest, then lowest id
    rows = conn.execute(
        "SELECT subject_id, id FROM (SELECT subject_id, id, row_number() OVER (PARTITION BY subject_id "
        "ORDER BY eye_distance_px DESC, sharpness DESC, id) AS pick FROM faces WHERE gallery_id = ?) WHERE pick = 1 "
        "ORDER BY subject_id", (gallery_id,)).fetchall()
    subjects = len(rows)
    space = spaces.of_gallery(conn, gallery_id)
    if subjects > MAX_SUBJECTS_MEASURED:
        picks = np.random.default_rng(0).choice(subjects, MAX_SUBJECTS_MEASURED, replace=False)
        rows = [rows[i] for i in sorted(picks)]
    face_ids = np.array([r[1] for r in rows], dtype=np.int64)
    vectors_of = lambda ids: spaces.vectors_for(conn, ids, space)  # noqa: E731
    distances = nearest_other(index, vectors_of(face_ids), np.array([r[0] for r in rows]),
                              lambda ids: subjects_for(conn, ids), vectors_of) if subjects > 1 else np.zeros(0)
    return from_distances(distances, subjects, target, space.max_threshold)


def subjects_for(conn: sqlite3.Connection, face_ids: np.ndarray) -> list[int | None]:
    """The subject id of each of `face_ids`, in that order (None for a face no longer in the record)."""
    ids = [int(f) for f in face_ids]
    found: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(conn.execute(f"SELECT id, subject_id FROM faces WHERE id IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall())
    return [found.get(i) for i in ids]


def from_distances(distances: np.ndarray, subjects: int, target: float = DEFAULT_TARGET_FPIR,
                   max_threshold: float = MAX_THRESHOLD) -> Calibration:
    """The calibration given the measured nearest-other-subject distances of a gallery of `subjects` people
    (capped at `max_threshold`, the gallery's model's 1:1 operating point)."""
    distances = np.sort(np.asarray(distances, dtype=np.float64))
    distances = distances[np.isfinite(distances)]
    threshold, limited = threshold_for(distances, target, max_threshold)
    curve = distances
    if len(curve) > CURVE_POINTS:
        curve = np.quantile(distances, np.linspace(0, 1, CURVE_POINTS), method="inverted_cdf")
    return Calibration(subjects=subjects, measured=len(distances), target_fpir=target, threshold=round(threshold, 4),
                       limited_by=limited,
                       # the duplicate distance is dlib's; other models' scale it by their 1:1 operating points
                       possible_duplicates=int((distances < DUPLICATE_DISTANCE * max_threshold / MAX_THRESHOLD).sum()),
                       curve=[round(float(d), 4) for d in curve])


def target_fpir(conn: sqlite3.Connection, gallery_id: int) -> float:
    """The gallery's target FPIR: its own setting, else DEFAULT_TARGET_FPIR."""
    row = conn.execute("SELECT target_fpir FROM galleries WHERE id = ?", (gallery_id,)).fetchone()
    return float(row[0]) if row and row[0] is not None else DEFAULT_TARGET_FPIR


def store(conn: sqlite3.Connection, gallery_id: int, calibration: Calibration) -> None:
    """Keep the calibration with the gallery's index build (the caller holds the transaction)."""
    conn.execute("UPDATE index_builds SET calibration = ? WHERE gallery_id = ?", (calibration.to_json(), gallery_id))


def load(conn: sqlite3.Connection, gallery_id: int) -> Calibration | None:
    """The calibration stored with the gallery's last build or sync, or None."""
    row = conn.execute("SELECT calibration FROM index_builds WHERE gallery_id = ?", (gallery_id,)).fetchone()
    return Calibration.from_json(row[0]) if row else None


def refresh(conn: sqlite3.Connection, gallery_id: int, index: faiss.Index) -> Calibration:
    """Recalibrate through `index` and store the result with the build."""
    calibration = calibrate(conn, gallery_id, index)
    store(conn, gallery_id, calibration)
    return calibration
