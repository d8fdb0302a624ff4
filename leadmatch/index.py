"""FAISS indexes: one per gallery, derived from the embeddings in SQLite.

Like FAISS's `index_factory`, one string names the index ("Flat", "IVF1024,SQ8", "HNSW32"); it is always
wrapped in an id map whose ids are the `faces.id` of the record, so faces can be added and removed without a
rebuild. Files are written to a temp file and renamed under an exclusive lock, so a reader sees the old or
the new index, never a torn one. `sync` reconciles an index with the record; `load` repairs a missing,
corrupt or stale index from the record and says what it did.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .errors import InputError
from .store import gallery_embeddings

DIM = 128
EXACT = "Flat"


@dataclass
class Loaded:
    """An index ready to search, its factory string, and what had to be repaired to get it (or None)."""

    index: faiss.Index
    factory: str
    repaired: str | None = None


def index_path(indexes_dir: Path, gallery_id: int) -> Path:
    return Path(indexes_dir) / f"gallery-{gallery_id}.faiss"


def build(ids: np.ndarray, vectors: np.ndarray, factory: str) -> faiss.Index:
    """A new id-mapped index of type `factory` holding `vectors` under `ids` (trained on them if needed)."""
    inner = faiss.index_factory(DIM, factory)
    if not inner.is_trained:
        if len(vectors) == 0:
            raise InputError(f"index {factory!r} must be trained and the gallery is empty", "enroll faces first")
        inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The face ids an id-mapped index holds."""
    return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)


def search(index: faiss.Index, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest face ids to `vector` and their Euclidean distances (as the index measures them)."""
    if index.ntotal == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    squared, ids = index.search(np.asarray(vector, dtype=np.float32).reshape(1, DIM), min(k, index.ntotal))
    keep = ids[0] >= 0
    return ids[0][keep], np.sqrt(np.maximum(squared[0][keep], 0.0))


@contextlib.contextmanager
def write_lock(path: Path):
    """Exclusive lock for anyone changing the index at `path` (readers need none: rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(index: faiss.Index, path: Path) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        faiss.write_index(index, str(temp))
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


def read(path: Path) -> faiss.Index | None:
    """Read the index at `path`, or None if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


def record_fingerprint(conn: sqlite3.Connection, gallery_id: int) -> tuple[int, int]:
    """(count, sum of ids) of the gallery's faces in the record: cheap, and catches any add or remove."""
    count, total = conn.execute(
        "SELECT count(*), coalesce(sum(id), 0) FROM faces WHERE gallery_id = ?", (gallery_id,)).fetchone()
    return int(count), int(total)


def index_fingerprint(index: faiss.Index) -> tuple[int, int]:
    ids = stored_ids(index)
    return int(len(ids)), int(ids.sum())


def rebuild(conn: sqlite3.Connection, indexes_dir: Path, gallery_id: int, factory: str) -> faiss.Index:
    """Build the gallery's index afresh from the record and write it."""
    path = index_path(indexes_dir, gallery_id)
    with write_lock(path):
        ids, vectors = gallery_embeddings(conn, gallery_id)
        index = build(ids, vectors, factory)
        write_atomic(index, path)
    return index


def sync(conn: sqlite3.Connection, indexes_dir: Path, gallery_id: int, factory: str) -> tuple[faiss.Index, str | None]:
    """Make the gallery's index hold exactly the record's faces: add the missing, remove the extra.

    Returns (index, what changed or None). A missing or unreadable file is rebuilt whole.
    """
    path = index_path(indexes_dir, gallery_id)
    with write_lock(path):
        index = read(path)
        if index is None:
            existed = path.exists()
            ids, vectors = gallery_embeddings(conn, gallery_id)
            index = build(ids, vectors, factory)
            write_atomic(index, path)
            what = "unreadable" if existed else "missing"
            return index, f"index file was {what}; rebuilt from the record ({len(ids)} faces)"
        if index_fingerprint(index) == record_fingerprint(conn, gallery_id):
            return index, None
        held = stored_ids(index)
        record_ids = np.array([r[0] for r in conn.execute(
            "SELECT id FROM faces WHERE gallery_id = ? ORDER BY id", (gallery_id,))], dtype=np.int64)
        extra = np.setdiff1d(held, record_ids)
        missing = np.setdiff1d(record_ids, held)
        if len(extra):
            index.remove_ids(faiss.IDSelectorArray(extra))
        if len(missing):
            vectors = _embeddings_for(conn, missing)
            index.add_with_ids(vectors, missing)
        write_atomic(index, path)
        return index, f"index was out of step with the record: added {len(missing)}, removed {len(extra)} faces"


def load(conn: sqlite3.Connection, indexes_dir: Path, gallery_id: int, factory: str) -> Loaded:
    """Open the gallery's index for searching, repairing it from the record if it is missing or stale."""
    path = index_path(indexes_dir, gallery_id)
    index = read(path)
    if index is not None and index_fingerprint(index) == record_fingerprint(conn, gallery_id):
        return Loaded(index, factory)
    index, repaired = sync(conn, indexes_dir, gallery_id, factory)
    return Loaded(index, factory, repaired)


def _embeddings_for(conn: sqlite3.Connection, face_ids: np.ndarray) -> np.ndarray:
    out = np.zeros((len(face_ids), DIM), dtype=np.float32)
    position = {int(f): i for i, f in enumerate(face_ids)}
    ids = [int(f) for f in face_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for face_id, blob in conn.execute(
                f"SELECT id, embedding FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[position[face_id]] = np.frombuffer(blob, dtype="<f4")
    return out
