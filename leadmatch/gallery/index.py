"""FAISS indexes: one per gallery, derived from the embeddings in SQLite.

Like FAISS's `index_factory`, one string names the index ("Flat", "IVF4096,SQ8", "HNSW32"). Ids are the
record's `faces.id`: IVF indexes hold them natively; others are wrapped in an `IndexIDMap`. Faces are added
and removed without a rebuild (HNSW cannot remove, so a removal rebuilds it).

Files are written to a temp file and renamed under an exclusive lock, so a reader sees the old or the new
index, never a torn one; readers memory-map the file where the type allows. `sync` reconciles an index with
the record; `load` repairs a missing, corrupt or stale index and says what it did. `build_gallery` trains a
fresh index, then a self-check against exact search picks the smallest `nprobe` that keeps recall ≥ 99.5%.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from leadmatch.lazy import lazy

from leadmatch.gallery import calibration, space as spaces
from leadmatch.errors import InputError, WorkspaceError
from leadmatch.record.store import transaction, utc_now

faiss = lazy("faiss")
np = lazy("numpy")

DIM = 128  # dlib's descriptor; a dlib+faceres gallery's vectors have spaces.Space.dim (1152)
EXACT = "Flat"
EXACT_LIMIT = 50_000            # exact search stays under a few ms up to about here on 2 cores
RECALL_TARGET = 0.995
SELF_CHECK_SAMPLE = 1000
SELF_CHECK_NOISE = 0.04         # per dimension: √128·0.04 ≈ 0.45, the far end of same-person distances
#: Same-person noise for the fused space, as a share of its different-person median (√2: 1 per part): dlib's
#: 0.45 against its median of about 0.9 there.
FUSED_NOISE_SHARE = 0.5
#: Fused vectors at scale: PCA to this many dimensions before the 8-bit codes (256 B a face instead of 1152).
FUSED_PCA_DIM = 256
RERANK_FACTOR = 2               # approximate indexes propose 2×k faces; exact distances pick the k


@dataclass
class Loaded:
    """An index ready to search, its factory string, and what had to be repaired to get it (or None)."""

    index: faiss.Index
    factory: str
    repaired: str | None = None


def index_path(indexes_dir: Path, gallery_id: int) -> Path:
    return Path(indexes_dir) / f"gallery-{gallery_id}.faiss"


def choose_factory(n_faces: int, dim: int = DIM) -> str:
    """Exact search while it is fast enough; above that an IVF index with 8-bit scalar codes
    (128 bytes a face) and about 4·√n lists, a power of two between 256 and 4096 (more lists make training
    and adding at 10M faces too slow for two cores). Fused (wider) vectors stay exact at any size: the compressed
    index measured for them (PCA to FUSED_PCA_DIM dimensions, then IVF and SQ8) found the mate only 0.976 of the
    time at 100k faces, and a lead the index does not propose is lost silently; an analyst may still choose one
    (`index build --index PCA256,IVF4096,SQ8`), and `fused_compressed_factory` names it."""
    if n_faces < EXACT_LIMIT or dim > FUSED_PCA_DIM:
        return EXACT
    return _lists(n_faces)


def _lists(n_faces: int) -> str:
    nlist = 2 ** round(math.log2(4 * math.sqrt(n_faces)))
    return f"IVF{min(4096, max(256, nlist))},SQ8"


def fused_compressed_factory(n_faces: int) -> str:
    """The compressed index for fused vectors (PCA to FUSED_PCA_DIM, IVF, SQ8: about 275 bytes a face), which a
    gallery gets only when an analyst asks for it: its recall does not yet meet the bar (see `choose_factory`)."""
    return f"PCA{FUSED_PCA_DIM},{_lists(n_faces)}"


def validate_factory(factory: str, dim: int = DIM) -> str:
    """Check that FAISS understands `factory` for `dim`-d vectors; return it stripped."""
    factory = (factory or "").strip()
    if factory.upper().startswith("IDMAP"):
        raise InputError(f"index {factory!r} should not name IDMap", "leadmatch adds the id map itself")
    try:
        faiss.index_factory(dim, factory)
    except RuntimeError:
        raise InputError(f"FAISS does not know the index {factory!r}",
                         'use a factory string such as "Flat", "IVF4096,SQ8" or "HNSW32"') from None
    return factory


def _ivf(index: faiss.Index):
    return faiss.try_extract_index_ivf(index)


def build(ids: np.ndarray, vectors: np.ndarray, factory: str) -> faiss.Index:
    """A new index of type `factory` holding `vectors` under `ids`, trained on (a sample of) them if needed."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    inner = faiss.index_factory(vectors.shape[1] if vectors.ndim == 2 else DIM, factory)
    if not inner.is_trained:
        ivf = _ivf(inner)
        needed = ivf.nlist if ivf is not None else 256
        if len(vectors) < needed:
            raise InputError(f"index {factory!r} needs at least {needed} faces to train; the gallery has "
                             f"{len(vectors)}", "use Flat, or fewer lists")
        sample = vectors
        if ivf is not None and len(vectors) > 64 * ivf.nlist:  # k-means needs ~40-64 points a list, not all
            sample = vectors[np.random.default_rng(0).choice(len(vectors), 64 * ivf.nlist, replace=False)]
        inner.train(sample)
    index = inner if _ivf(inner) is not None else faiss.IndexIDMap(inner)
    if len(ids):
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    return index


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The face ids an index holds."""
    ivf = _ivf(index)
    if ivf is None:
        return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def set_nprobe(index: faiss.Index, nprobe: int | None) -> None:
    ivf = _ivf(index)
    if ivf is not None and nprobe:
        ivf.nprobe = int(min(nprobe, ivf.nlist))


def is_exact(index: faiss.Index) -> bool:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return isinstance(inner, faiss.IndexFlat)


def search(index: faiss.Index, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest face ids to `vector` and their Euclidean distances (as the index measures them)."""
    if index.ntotal == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    squared, ids = index.search(np.asarray(vector, dtype=np.float32).reshape(1, index.d), min(k, index.ntotal))
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


def _check_file_or_absent(path: Path) -> None:
    """An index path must be a file or nothing; anything else (a folder) is the user's to move."""
    if path.exists() and not path.is_file():
        raise WorkspaceError(f"index path {path} is not a file", "move it out of the way; leadmatch rebuilds the "
                             "index from the record")


def write_atomic(index: faiss.Index, path: Path) -> str:
    """Write to a temp file in the same folder, fsync, then rename over `path`. Returns the sha256 of the bytes
    written, hashed as they stream out (no second read of the file)."""
    _check_file_or_absent(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "wb") as handle:
            def sink(chunk: bytes) -> int:
                digest.update(chunk)
                return handle.write(chunk)

            writer = faiss.PyCallbackIOWriter(sink)
            faiss.write_index(index, writer)
            del writer  # flushes FAISS's buffer through `sink`
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return digest.hexdigest()


def write_recorded(conn: sqlite3.Connection, gallery_id: int, index: faiss.Index, path: Path) -> None:
    """Write the gallery's index file (atomically) and record its content hash, size and file identity, so a
    file changed by anything but leadmatch is known on open (`content_problem`)."""
    digest = write_atomic(index, path)
    identity = file_identity(path)
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO index_files (gallery_id, sha256, bytes, identity, written_at) "
                     "VALUES (?, ?, ?, ?, ?)", (gallery_id, digest, identity[2], json.dumps(identity), utc_now()))


def file_identity(path: Path) -> tuple | None:
    """(device, inode, size, mtime_ns, ctime_ns) of the file, or None if there is none. ctime cannot be set
    back by a user, so a file rewritten in place with its old mtime restored still shows as changed."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def recorded_file(conn: sqlite3.Connection, gallery_id: int) -> dict | None:
    """What the record says about the gallery's index file as last written: sha256, bytes, identity."""
    row = conn.execute("SELECT sha256, bytes, identity FROM index_files WHERE gallery_id = ?", (gallery_id,)).fetchone()
    return None if row is None else {"sha256": row[0], "bytes": row[1], "identity": tuple(json.loads(row[2]))}


def content_problem(conn: sqlite3.Connection, gallery_id: int, path: Path, identity: tuple,
                    recorded: dict | None = None) -> str | None:
    """None if the index file at `path` holds the bytes leadmatch recorded when it wrote it; else what is wrong.

    A file whose identity is the one recorded is unchanged; otherwise its sha256 is computed (the cold cost)
    and, if the bytes are the recorded ones (a copied or restored workspace), its new identity is recorded.
    """
    recorded = recorded if recorded is not None else recorded_file(conn, gallery_id)
    if recorded is None:
        return "index file has no recorded content hash (written by an older leadmatch)"
    if identity == recorded["identity"]:
        return None
    if identity[2] != recorded["bytes"] or file_sha256(path) != recorded["sha256"]:
        return "index file's sha256 differs from the recorded one (altered, or its write was cut short)"
    with transaction(conn):
        conn.execute("UPDATE index_files SET identity = ? WHERE gallery_id = ? AND sha256 = ?",
                     (json.dumps(identity), gallery_id, recorded["sha256"]))
    return None


def read(path: Path, mmap: bool = False) -> faiss.Index | None:
    """Read the index at `path` (memory-mapped, read-only, if `mmap`), or None if missing or unreadable."""
    if not path.is_file():
        return None
    try:
        if mmap:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


def record_fingerprint(conn: sqlite3.Connection, gallery_id: int) -> tuple[int, int]:
    """(count, sum of ids) of the gallery's faces in the record, kept by triggers: catches any add or remove."""
    row = conn.execute("SELECT faces, id_sum FROM gallery_stats WHERE gallery_id = ?", (gallery_id,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def index_fingerprint(index: faiss.Index) -> tuple[int, int]:
    ids = stored_ids(index)
    return int(len(ids)), int(ids.sum())


def build_info(conn: sqlite3.Connection, gallery_id: int) -> dict | None:
    row = conn.execute("SELECT * FROM index_builds WHERE gallery_id = ?", (gallery_id,)).fetchone()
    if row is None:
        return None
    info = dict(row)
    info["self_check"] = json.loads(info["self_check"])
    return info


def factory_for(conn: sqlite3.Connection, gallery_id: int, chosen: str | None) -> str:
    """The gallery's own factory string, else the one it was last built with, else the default for its size."""
    if chosen:
        return chosen
    info = build_info(conn, gallery_id)
    return info["factory"] if info else choose_factory(record_fingerprint(conn, gallery_id)[0],
                                                       spaces.dim_of(conn, gallery_id))


def factory_for_model(conn: sqlite3.Connection, gallery_id: int, factory: str) -> str:
    """`factory` if FAISS can build it for the gallery's vectors as its model now makes them, else the default
    for its size and width (a PCA reduction made for fused vectors cannot take dlib's 128)."""
    dim = spaces.dim_of(conn, gallery_id)
    try:
        faiss.index_factory(dim, factory)
        return factory
    except RuntimeError:
        return choose_factory(record_fingerprint(conn, gallery_id)[0], dim)


def check_noise(dim: int) -> float:
    """Per-dimension same-person noise of the self-check: SELF_CHECK_NOISE for dlib's vectors; for fused ones
    FUSED_NOISE_SHARE of their different-person median (√2) over their dimensions (its norm: about the fused
    same-person distance), laid along the gallery's own spread (`_check_probes`)."""
    return SELF_CHECK_NOISE if dim == DIM else FUSED_NOISE_SHARE * math.sqrt(2) / math.sqrt(dim)


def _check_probes(ids: np.ndarray, vectors: np.ndarray, sample: int, k: int):
    """Stored faces moved by same-person noise, and the face exact search finds for each (None if not in top k)."""
    rng = np.random.default_rng(1)
    picks = rng.choice(len(ids), min(sample, len(ids)), replace=False)
    dim = vectors.shape[1]
    if dim == DIM:
        noise = rng.normal(0, check_noise(dim), (len(picks), dim))
    else:
        # fused vectors: isotropic noise would mostly fall outside the PCA's kept dimensions and flatter the
        # index (measured: self-check 0.996, real probes 0.27 at 1M); same-person differences lie along the
        # gallery's own spread, so the noise takes the direction of a difference between two stored faces
        others = vectors[rng.integers(0, len(ids), (2, len(picks)))]
        noise = others[0] - others[1]
        norms = np.linalg.norm(noise, axis=1, keepdims=True)
        noise = noise / np.maximum(norms, 1e-12) * (check_noise(dim) * math.sqrt(dim))
    queries = (vectors[picks] + noise).astype(np.float32)
    _, exact_rows = faiss.knn(queries, np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(ids)))
    wanted = [ids[p] if p in row else None for p, row in zip(picks, exact_rows)]
    return queries, wanted


def _recall(index: faiss.Index, queries: np.ndarray, wanted: list, k: int) -> float:
    _, found = index.search(queries, min(k * RERANK_FACTOR, index.ntotal))
    counted = [w for w in wanted if w is not None]
    hits = sum(1 for w, row in zip(wanted, found) if w is not None and w in row)
    return hits / max(1, len(counted))


def self_check_recall_at(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray,
                         sample: int = SELF_CHECK_SAMPLE, k: int = 20) -> float:
    """Recall against exact search at the index's current settings (nprobe)."""
    return _recall(index, *_check_probes(ids, vectors, sample, k), k)


def self_check(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, sample: int = SELF_CHECK_SAMPLE,
               k: int = 20) -> dict:
    """Recall of the index against exact search, on stored faces moved by same-person noise.

    A probe counts when exact search has its source face in the top `k`; it is kept when the index does too.
    For IVF, nprobe doubles from 1 until the target is met, then a bisection finds the smallest that meets it.
    """
    if len(ids) == 0:
        return {"sample": 0, "recall": None, "nprobe": None}
    queries, wanted = _check_probes(ids, vectors, sample, k)
    counted = sum(w is not None for w in wanted)
    ivf = _ivf(index)
    if ivf is None:
        return {"sample": counted, "recall": round(_recall(index, queries, wanted, k), 4), "nprobe": None,
                "target": RECALL_TARGET}
    def recall_at(nprobe: int) -> float:
        ivf.nprobe = nprobe
        return _recall(index, queries, wanted, k)

    failing, passing = 0, 1
    while recall_at(passing) < RECALL_TARGET and passing < ivf.nlist:  # double until the target is met…
        failing, passing = passing, min(2 * passing, ivf.nlist)
    while passing - failing > 1:  # …then halve the gap: the smallest nprobe that meets it
        middle = (failing + passing) // 2
        failing, passing = (failing, middle) if recall_at(middle) >= RECALL_TARGET else (middle, passing)
    measured = recall_at(passing)
    return {"sample": counted, "recall": round(measured, 4), "nprobe": passing, "target": RECALL_TARGET}


def build_gallery(conn: sqlite3.Connection, indexes_dir: Path, gallery_id: int, factory: str,
                  keep_factory: bool = False) -> dict:
    """Train and write a fresh index from the record, self-check it, and record the build. With
    `keep_factory`, `factory` becomes the gallery's chosen type too, in the same transaction: only a build that
    succeeded sets it."""
    path = index_path(indexes_dir, gallery_id)
    _check_file_or_absent(path)
    with write_lock(path):
        space, ids, vectors = spaces.fitted(conn, gallery_id)
        started = time.perf_counter()
        index = build(ids, vectors, factory)
        check = self_check(index, ids, vectors)
        set_nprobe(index, check["nprobe"])
        seconds = time.perf_counter() - started
        write_recorded(conn, gallery_id, index, path)
        with transaction(conn):
            conn.execute("INSERT OR REPLACE INTO index_builds (gallery_id, factory, nprobe, trained_on, "
                         "built_max_face_id, built_at, build_seconds, self_check, fusion) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (gallery_id, factory, check["nprobe"], len(ids), int(ids.max()) if len(ids) else 0,
                          utc_now(), round(seconds, 3), json.dumps(check | {"at": utc_now()}), space.to_json()))
            if keep_factory:
                conn.execute("UPDATE galleries SET index_factory = ? WHERE id = ?", (factory, gallery_id))
            calibration.refresh(conn, gallery_id, index)
    return {"factory": factory, "faces": len(ids), "build_seconds": round(seconds, 3), "self_check": check,
            **space.describe()}


def sync(conn: sqlite3.Connection, indexes_dir: Path, gallery_id: int, factory: str) -> tuple[faiss.Index, str | None]:
    """Make the gallery's index hold exactly the record's faces: add the missing, remove the extra.

    Returns (index, what changed or None). A missing or unreadable file is built whole.
    """
    path = index_path(indexes_dir, gallery_id)
    index = read(path)
    if index is not None and index.d != spaces.dim_of(conn, gallery_id):
        result = build_gallery(conn, indexes_dir, gallery_id, factory_for_model(conn, gallery_id, factory))
        return read(path), (f"index was made for another face model; rebuilt for {result['model']} from the record "
                            f"({result['faces']} faces)")
    if index is None:
        existed = path.exists()
        result = build_gallery(conn, indexes_dir, gallery_id, factory)
        what = "unreadable" if existed else "missing"
        return read(path), f"index file was {what}; rebuilt from the record ({result['faces']} faces)"
    with write_lock(path):
        index = read(path) or index  # another writer may have finished while we waited
        # never patch a file whose bytes are not the ones leadmatch wrote: its vectors may not be the record's
        untrusted = content_problem(conn, gallery_id, path, file_identity(path))
        if untrusted is None and index_fingerprint(index) == record_fingerprint(conn, gallery_id):
            return index, None
        held = stored_ids(index)
        record_ids = np.array([r[0] for r in conn.execute(
            "SELECT id FROM faces WHERE gallery_id = ? ORDER BY id", (gallery_id,))], dtype=np.int64)
        extra = np.setdiff1d(held, record_ids)
        missing = np.setdiff1d(record_ids, held)
        try:
            if len(extra) and untrusted is None:
                index.remove_ids(faiss.IDSelectorArray(extra))
        except RuntimeError:  # HNSW cannot remove: rebuild it whole
            extra_note = len(extra)
        else:
            extra_note = None
        if extra_note is None and untrusted is None:
            if len(missing):
                index.add_with_ids(spaces.vectors_for(conn, missing, spaces.of_gallery(conn, gallery_id)), missing)
            write_recorded(conn, gallery_id, index, path)
            with transaction(conn):  # the gallery changed: so did its impostor distances
                calibration.refresh(conn, gallery_id, index)
    if untrusted is not None:
        result = build_gallery(conn, indexes_dir, gallery_id, factory)
        return read(path), f"{untrusted}; rebuilt from the record ({result['faces']} faces)"
    if extra_note is not None:
        build_gallery(conn, indexes_dir, gallery_id, factory)
        return read(path), f"index rebuilt to remove {extra_note} faces (this index type cannot remove in place)"
    return index, f"index was out of step with the record: added {len(missing)}, removed {len(extra)} faces"


#: Indexes this process has opened, by path: (file identity, index, its fingerprint, the recorded sha256 its
#: content was checked against). A writer renames a new file into place, which changes the identity, so a kept
#: index is never used after its file was replaced or rewritten, and its content is checked once per identity.
_opened: dict[Path, tuple[tuple, faiss.Index, tuple[int, int], str]] = {}


def _open_for_search(conn: sqlite3.Connection, gallery_id: int,
                     path: Path) -> tuple[faiss.Index | None, tuple[int, int] | None]:
    """The kept or freshly opened index and its fingerprint; (None, None) if missing, unreadable or not the
    bytes leadmatch wrote (the repair path then says which)."""
    identity = file_identity(path)
    if identity is None:
        return None, None
    recorded = recorded_file(conn, gallery_id)
    kept = _opened.get(path)
    if kept and recorded and kept[0] == identity and kept[3] == recorded["sha256"]:
        return kept[1], kept[2]
    if content_problem(conn, gallery_id, path, identity, recorded) is not None:
        return None, None
    index = read(path, mmap=True)
    if index is None:
        return None, None
    fingerprint = index_fingerprint(index)
    _opened[path] = (identity, index, fingerprint, recorded["sha256"])
    return index, fingerprint


def load(conn: sqlite3.Connection, indexes_dir: Path, gallery_id: int, factory: str) -> Loaded:
    """Open the gallery's index for searching (memory-mapped where possible, kept open by this process while
    its file is unchanged), repairing it from the record if it is missing, stale, or not the file leadmatch
    wrote (its content hash differs from the one recorded)."""
    path = index_path(indexes_dir, gallery_id)
    index, fingerprint = _open_for_search(conn, gallery_id, path)
    repaired = None
    if index is None or fingerprint != record_fingerprint(conn, gallery_id) \
            or index.d != spaces.dim_of(conn, gallery_id):
        index, repaired = sync(conn, indexes_dir, gallery_id, factory)
    info = build_info(conn, gallery_id)
    set_nprobe(index, info["nprobe"] if info else None)
    return Loaded(index, factory, repaired)
