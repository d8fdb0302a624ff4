"""A gallery's face model and the vectors it searches with (issue 23).

Each gallery has a model: `dlib` (the default: dlib's 128-d ResNet descriptor, searched as is) or
`dlib+faceres` (dlib's descriptor fused with FaceRes's unit 1024-d one). The fused vector is

    [a · dlib, b · FR / ‖FR‖]     (1152 dimensions, Euclidean distance)

with a and b set from the gallery alone, no labels: over pairs of faces of different enrolled subjects, the
median distance is 1 for each part, so neither model outweighs the other. The scales are fitted whenever the
gallery's index is built and kept with that build (`index_builds.fusion`), so the index, the calibration and
every probe use the same ones; faces added later (an index brought in step) use them too.

The record keeps each face's dlib descriptor (`faces.embedding`) and, for galleries that use it, its unit
FaceRes descriptor (`faces.faceres`); the fused vector is made from them when needed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from leadmatch.lazy import lazy

from leadmatch.errors import InputError

np = lazy("numpy")

DLIB = "dlib"
FUSED = "dlib+faceres"
MODELS = (DLIB, FUSED)
DEFAULT_MODEL = DLIB
DLIB_DIM, FACERES_DIM = 128, 1024
#: Pairs of faces of different subjects the scales are fitted on (seeded: the same gallery, the same scales).
SCALE_PAIRS = 20_000
#: The calibrated threshold never goes above each model's 1:1 operating point: dlib's published 0.6, and for the
#: fused model the distance with the same false-match rate on lfw-dev's different-person pairs (README "A second
#: face model").
MAX_THRESHOLD = {DLIB: 0.6, FUSED: 1.1}


def validate(model: str | None) -> str:
    """A known model name, else InputError naming the choices."""
    model = (model or "").strip()
    if model not in MODELS:
        raise InputError(f"unknown face model {model!r}", f"use one of: {', '.join(MODELS)}")
    return model


@dataclass(frozen=True)
class Space:
    """The vectors a gallery searches with: its model and, for the fused model, the scales (a, b)."""

    model: str = DLIB
    scales: tuple[float, float] | None = None

    @property
    def fused(self) -> bool:
        return self.model == FUSED

    @property
    def dim(self) -> int:
        return DLIB_DIM + FACERES_DIM if self.fused else DLIB_DIM

    @property
    def max_threshold(self) -> float:
        return MAX_THRESHOLD[self.model]

    def vectors(self, dlib: np.ndarray, faceres: np.ndarray | None = None) -> np.ndarray:
        """n×128 dlib descriptors (and n×1024 unit FaceRes ones for the fused model) → n×dim search vectors."""
        dlib = np.asarray(dlib, dtype=np.float32).reshape(-1, DLIB_DIM)
        if not self.fused:
            return np.ascontiguousarray(dlib)
        if faceres is None or self.scales is None:
            raise ValueError("the fused model needs FaceRes descriptors and fitted scales")
        a, b = self.scales
        faceres = np.asarray(faceres, dtype=np.float32).reshape(-1, FACERES_DIM)
        return np.ascontiguousarray(np.hstack([a * dlib, b * faceres]), dtype=np.float32)

    def of_row(self, row) -> np.ndarray:
        """The search vector of one `faces` row (columns `embedding` and `faceres`)."""
        faceres = np.frombuffer(row["faceres"], dtype="<f4") if self.fused else None
        return self.vectors(np.frombuffer(row["embedding"], dtype="<f4"), faceres)[0]

    def to_json(self) -> str | None:
        return json.dumps({"model": self.model, "scales": list(self.scales)}) if self.fused else None

    def describe(self) -> dict:
        """What outputs show: the model, and for the fused one its scales."""
        out = {"model": self.model}
        if self.fused and self.scales:
            out["scales"] = {"dlib": round(self.scales[0], 4), "faceres": round(self.scales[1], 4)}
        return out


def fit_scales(dlib: np.ndarray, faceres: np.ndarray, subjects: np.ndarray,
               pairs: int = SCALE_PAIRS) -> tuple[float, float]:
    """(a, b) making the median distance between faces of different subjects 1 for each part. With fewer than
    two subjects there are no such pairs: (1, 1)."""
    subjects = np.asarray(subjects)
    if len(np.unique(subjects)) < 2:
        return 1.0, 1.0
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, len(subjects), (2, pairs * 2))
    keep = subjects[first] != subjects[second]
    first, second = first[keep][:pairs], second[keep][:pairs]
    median = lambda v: float(np.median(_pair_distances(v, first, second)))  # noqa: E731
    d_dlib, d_faceres = median(np.asarray(dlib, np.float32)), median(np.asarray(faceres, np.float32))
    return (1.0 / d_dlib if d_dlib > 0 else 1.0), (1.0 / d_faceres if d_faceres > 0 else 1.0)


def _pair_distances(vectors: np.ndarray, first: np.ndarray, second: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """‖vectors[first[i]] − vectors[second[i]]‖ for each i, a chunk of pairs at a time: the same numbers as one
    call, without a pairs×1024 temporary (20,000 pairs of FaceRes rows are 80 MB, 0.2 s of page faults)."""
    out = np.empty(len(first), dtype=np.float32)
    for start in range(0, len(first), chunk):
        stop = start + chunk
        out[start:stop] = np.linalg.norm(vectors[first[start:stop]] - vectors[second[start:stop]], axis=1)
    return out


def default_model(conn: sqlite3.Connection) -> str:
    """The model new galleries get when none is named: the workspace's setting (`init --model`), else dlib."""
    row = conn.execute("SELECT value FROM settings WHERE key = 'default_model'").fetchone()
    return row[0] if row else DEFAULT_MODEL


def set_default_model(conn: sqlite3.Connection, actor: str, model: str) -> str:
    """The workspace owner's choice of model for new galleries (`init --model`), checked and audited. The
    fused model needs the FaceRes weights installed (ModelError, exit 5, otherwise)."""
    from leadmatch.biometrics.models import registry as models
    from leadmatch.record import audit
    from leadmatch.record.store import transaction

    model = validate(model)
    if model == FUSED:
        models.faceres_onnx_path()
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('default_model', ?)", (model,))
        audit.record(conn, actor, "settings.default-model", objects={"model": model})
    return model


def model_of(conn: sqlite3.Connection, gallery_id: int) -> str:
    """The gallery's face model."""
    row = conn.execute("SELECT model FROM galleries WHERE id = ?", (gallery_id,)).fetchone()
    return row[0] if row and row[0] else DEFAULT_MODEL


def dim_of(conn: sqlite3.Connection, gallery_id: int) -> int:
    """The width of the gallery's search vectors (from its model alone: no face is read)."""
    return Space(model_of(conn, gallery_id)).dim


def _face_rows(conn: sqlite3.Connection, gallery_id: int, fused: bool) -> list:
    columns = "id, subject_id, embedding" + (", faceres" if fused else "")
    return conn.execute(f"SELECT {columns} FROM faces WHERE gallery_id = ? ORDER BY id", (gallery_id,)).fetchall()


def _stack(rows: list, column: str, dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    missing = sum(1 for r in rows if r[column] is None)
    if missing:
        raise InputError(f"{missing} faces of this gallery have no FaceRes descriptor",
                         "switch the gallery's model again (`gallery model NAME dlib+faceres`) to re-embed them")
    return np.frombuffer(b"".join(r[column] for r in rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)


def fitted(conn: sqlite3.Connection, gallery_id: int) -> tuple[Space, np.ndarray, np.ndarray]:
    """The gallery's space with scales fitted to its faces now, with all its face ids and search vectors (what
    an index build uses)."""
    model = model_of(conn, gallery_id)
    rows = _face_rows(conn, gallery_id, model == FUSED)
    ids = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
    dlib = _stack(rows, "embedding", DLIB_DIM)
    if model != FUSED:
        return Space(DLIB), ids, dlib
    faceres = _stack(rows, "faceres", FACERES_DIM)
    subjects = np.fromiter((r["subject_id"] for r in rows), dtype=np.int64, count=len(rows))
    space = Space(FUSED, fit_scales(dlib, faceres, subjects))
    return space, ids, space.vectors(dlib, faceres)


def of_gallery(conn: sqlite3.Connection, gallery_id: int) -> Space:
    """The space the gallery's index was built in: its model, with the scales kept with the last build (fitted
    now, not kept, when there is no fused build yet)."""
    model = model_of(conn, gallery_id)
    if model != FUSED:
        return Space(DLIB)
    row = conn.execute("SELECT fusion FROM index_builds WHERE gallery_id = ?", (gallery_id,)).fetchone()
    kept = json.loads(row[0]) if row and row[0] else None
    if kept and kept.get("model") == FUSED:
        return Space(FUSED, tuple(kept["scales"]))
    return fitted(conn, gallery_id)[0]


def vectors_for(conn: sqlite3.Connection, face_ids: np.ndarray, space: Space) -> np.ndarray:
    """Search vectors of `face_ids`, in that order (n×dim float32), read 500 ids a query; a face no longer in
    the record gives zeros."""
    out = np.zeros((len(face_ids), space.dim), dtype=np.float32)
    position = {int(f): i for i, f in enumerate(face_ids)}
    ids = [int(f) for f in face_ids]
    columns = "id, embedding" + (", faceres" if space.fused else "")
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row in conn.execute(f"SELECT {columns} FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            if space.fused and row["faceres"] is None:
                raise InputError(f"face {row['id']} has no FaceRes descriptor",
                                 "switch the gallery's model again to re-embed its faces")
            out[position[row["id"]]] = space.of_row(row)
    return out
