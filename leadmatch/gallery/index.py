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
#: Fused galleries at scale are searched in two stages: a compact index over the dlib part ("TwoStage:" then its
#: factory, e.g. "TwoStage:IVF4096,SQ8") proposes FIRST_STAGE_PROPOSALS faces, and the exact fused distance from
#: the stored vectors (a memory-mapped bfloat16 file beside the index) re-ranks them (README "Search at scale").
TWO_STAGE = "TwoStage:"
#: The first stage proposes this many faces per million in the gallery, at least this many: a mate's rank in
#: dlib's space grows with the gallery, and on lfw-dev's mates extrapolated (benchmarks/two_stage_lfw.py) 400
#: keep every mate exact fused search ranks in its top 20 at 100k and 1M, where 200 keep 98.3 % at 1M, and at
#: 10M 400 keep 90 % but 3,200 all (this rule gives 4,000 there).
FIRST_STAGE_PROPOSALS = 400
VECTORS_MAGIC = b"LMVECB16"


@dataclass
class Loaded:
    """An index ready to search, its factory string, and what had to be repaired to get it (or None)."""

    index: faiss.Index
    factory: str
    repaired: str | None = None


def index_path(indexes_dir: Path, gallery_id: int) -> Path:
    return Path(indexes_dir) / f"gallery-{gallery_id}.faiss"


def vectors_path(path: Path) -> Path:
    """The stored fused vectors of a two-stage index at `path` (gallery-N.faiss → gallery-N.vectors)."""
    return Path(path).with_suffix(".vectors")


def choose_factory(n_faces: int, dim: int = DIM) -> str:
    """Exact search while it is fast enough; above that an IVF index with 8-bit scalar codes
    (128 bytes a face) and about 4·√n lists, a power of two between 256 and 4096 (more lists make training
    and adding at 10M faces too slow for two cores). Fused (wider) vectors at the same size go to the two-stage
    search (`TwoStage`): the dlib part's IVF index proposes, the exact fused distance from the stored vectors
    re-ranks; exact Flat over 1152-d vectors costs 4.6 KB of RAM a face and 9× dlib's exact search time, so past
    50,000 faces (230 MB, ~12 ms a probe) it stops being sensible. (The compressed PCA256,IVF,SQ8 index kept the
    mate only 0.976 of the time at 100k; an analyst may still choose it: `fused_compressed_factory`.)"""
    if n_faces < EXACT_LIMIT:
        return EXACT
    return TWO_STAGE + _lists(n_faces) if dim > DIM else _lists(n_faces)


def _lists(n_faces: int) -> str:
    nlist = 2 ** round(math.log2(4 * math.sqrt(n_faces)))
    return f"IVF{min(4096, max(256, nlist))},SQ8"


def fused_compressed_factory(n_faces: int) -> str:
    """The compressed index for fused vectors (PCA to FUSED_PCA_DIM, IVF, SQ8: about 275 bytes a face), which a
    gallery gets only when an analyst asks for it: its recall does not yet meet the bar (see `choose_factory`)."""
    return f"PCA{FUSED_PCA_DIM},{_lists(n_faces)}"


def validate_factory(factory: str, dim: int = DIM) -> str:
    """Check that FAISS understands `factory` for `dim`-d vectors (for "TwoStage:…", its first stage for the
    dlib part, and only for fused vectors); return it stripped."""
    factory = (factory or "").strip()
    if factory.upper().startswith("IDMAP") or first_stage(factory).upper().startswith("IDMAP"):
        raise InputError(f"index {factory!r} should not name IDMap", "leadmatch adds the id map itself")
    if first_stage(factory) != factory and dim <= DIM:
        raise InputError(f"index {factory!r} is for dlib+faceres galleries",
                         "a dlib gallery's index is one stage: use e.g. \"IVF4096,SQ8\"")
    if not buildable(factory, dim):
        raise InputError(f"FAISS does not know the index {factory!r}",
                         'use a factory string such as "Flat", "IVF4096,SQ8", "HNSW32" or, for dlib+faceres, '
                         '"TwoStage:IVF4096,SQ8"')
    return factory


def first_stage(factory: str) -> str:
    """The factory of a two-stage index's first stage ("TwoStage:IVF4096,SQ8" → "IVF4096,SQ8"), else `factory`."""
    return factory[len(TWO_STAGE):] if factory.startswith(TWO_STAGE) else factory


def buildable(factory: str, dim: int) -> bool:
    """Whether an index of type `factory` can be built for `dim`-d vectors (a two-stage one only for fused)."""
    two_stage = first_stage(factory) != factory
    if two_stage and dim <= DIM:
        return False
    try:
        faiss.index_factory(DIM if two_stage else dim, first_stage(factory))
    except RuntimeError:
        return False
    return True


class TwoStage:
    """A fused gallery's index in two stages, searched like a FAISS index (`search`, `d`, `ntotal`).

    `first` is a compact FAISS index over the dlib part of the fused vectors (their first 128 columns, a·dlib),
    holding the face ids; `ids` (ascending) and `vectors` (n×1152 bfloat16 bit patterns as uint16, the same
    order) are the stored fused vectors, memory-mapped from the gallery's `.vectors` file when opened for
    searching. A search asks the first stage for `proposals_for(ntotal)` faces (at least k) and returns the k
    nearest by fused distance over those. bfloat16 (a float32's upper half, rounded) rather than float16: it
    widens back to float32 with one shift, 10× faster than numpy's float16 conversion (0.08 against 0.77 ms for
    400 rows), and its 0.2 % rounding moves a fused distance by about 1e-3; the search then re-ranks what it
    keeps exactly from the record anyway.
    """

    def __init__(self, first: faiss.Index, ids: np.ndarray, vectors: np.ndarray, proposals: int | None = None):
        self.first, self.ids, self.vectors, self.fixed_proposals = first, ids, vectors, proposals

    @property
    def proposals(self) -> int:
        """Faces the first stage proposes: as set for a measurement, else `proposals_for` the gallery's size."""
        return self.fixed_proposals or proposals_for(self.ntotal)

    @property
    def d(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def ntotal(self) -> int:
        return int(self.first.ntotal)

    def rows(self, face_ids: np.ndarray) -> np.ndarray:
        """Positions of `face_ids` in the stored vectors (each must be there)."""
        return np.searchsorted(self.ids, face_ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(squared fused distances, face ids), n×k each, nearest first, -1 where fewer than k were proposed."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.d)
        wide = min(max(self.proposals, k), self.ntotal)
        squared = np.full((len(queries), k), np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), 64):  # bounded memory: 64 queries' proposals at a time
            chunk = queries[start:start + 64]
            _, proposed = self.first.search(np.ascontiguousarray(chunk[:, :DIM]), wide)
            for row, (query, ids) in enumerate(zip(chunk, proposed)):
                positions = np.sort(self.rows(ids[ids >= 0]))  # ascending: the file is read front to back
                if not len(positions):
                    continue
                near, order = faiss.knn(query[None], from_bfloat16(self.vectors[positions]), min(k, len(positions)))
                keep = order[0] >= 0
                squared[start + row, :keep.sum()] = near[0][keep]
                found[start + row, :keep.sum()] = np.asarray(self.ids)[positions[order[0][keep]]]
        return squared, found


def proposals_for(n_faces: int) -> int:
    """First-stage proposals for a gallery of `n_faces`: FIRST_STAGE_PROPOSALS per million, never fewer."""
    return max(FIRST_STAGE_PROPOSALS, math.ceil(FIRST_STAGE_PROPOSALS * n_faces / 1_000_000))


def to_bfloat16(vectors: np.ndarray) -> np.ndarray:
    """float32 rows → their bfloat16 bit patterns (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(vectors, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) → float32, exactly."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _ivf(index):
    return faiss.try_extract_index_ivf(index.first if isinstance(index, TwoStage) else index)


def build(ids: np.ndarray, vectors: np.ndarray, factory: str):
    """A new index of type `factory` holding `vectors` under `ids`, trained on (a sample of) them if needed. A
    two-stage one ("TwoStage:…", fused vectors) builds its first stage on their dlib part and keeps the vectors,
    ordered by id, as bfloat16."""
    if first_stage(factory) != factory:
        ids, vectors = np.asarray(ids, dtype=np.int64), np.asarray(vectors)
        order = np.argsort(ids, kind="stable")
        first = build(ids[order], vectors[order, :DIM], first_stage(factory))
        stored = np.empty(vectors.shape, dtype=np.uint16)
        for start in range(0, len(ids), 65536):  # in chunks: no second float32 copy of a million faces
            stored[start:start + 65536] = to_bfloat16(vectors[order[start:start + 65536]])
        return TwoStage(first, ids[order], stored)
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


def stored_ids(index) -> np.ndarray:
    """The face ids an index holds."""
    if isinstance(index, TwoStage):
        return stored_ids(index.first)
    ivf = _ivf(index)
    if ivf is None:
        return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def memory_bytes(index) -> int:
    """What the index holds in RAM: its serialized FAISS bytes; for a two-stage index its first stage's plus its
    ids (8 bytes a face; the bfloat16 vectors stay in the memory-mapped file, only the proposed rows read)."""
    if isinstance(index, TwoStage):
        return int(faiss.serialize_index(index.first).size) + 8 * len(index.ids)
    return int(faiss.serialize_index(index).size)


def set_nprobe(index: faiss.Index, nprobe: int | None) -> None:
    ivf = _ivf(index)
    if ivf is not None and nprobe:
        ivf.nprobe = int(min(nprobe, ivf.nlist))


def is_exact(index) -> bool:
    if isinstance(index, TwoStage):
        return False
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
    """Write the index to a temp file in the same folder, fsync, then rename over `path` (`_write_atomically`);
    the sha256 of the bytes written."""
    def fill(write) -> None:
        writer = faiss.PyCallbackIOWriter(write)
        faiss.write_index(index, writer)
        del writer  # flushes FAISS's buffer through `write`

    return _write_atomically(path, fill)


def _write_stream(path: Path, chunks) -> str:
    """Write the byte strings of `chunks` atomically to `path` (`_write_atomically`); their sha256."""
    def fill(write) -> None:
        for chunk in chunks:
            write(chunk)

    return _write_atomically(path, fill)


def _write_atomically(path: Path, fill) -> str:
    """`fill(write)` writes the file's bytes through `write(chunk)` into a temp file beside `path` (0600), which is
    fsynced and renamed over `path`; the sha256 of the bytes, hashed as they stream out (no second read)."""
    _check_file_or_absent(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "wb") as handle:
            def write(chunk: bytes) -> int:
                digest.update(chunk)
                return handle.write(chunk)

            fill(write)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return digest.hexdigest()


def write_vectors(path: Path, ids: np.ndarray, dim: int, rows) -> str:
    """The stored fused vectors of a two-stage index, written atomically: a 32-byte header (VECTORS_MAGIC, count,
    width, 0), the ids (int64, ascending), then the vectors as bfloat16 (uint16 bit patterns), one row per id,
    from `rows` (arrays of consecutive rows in id order). Returns the file's sha256."""
    ids = np.ascontiguousarray(ids, dtype="<i8")
    header = VECTORS_MAGIC + np.array([len(ids), dim, 0], dtype="<i8").tobytes()
    return _write_stream(path, (part for chunks in ([header, ids.tobytes()],
                                                    (np.ascontiguousarray(r, dtype="<u2").tobytes() for r in rows))
                                for part in chunks))


def read_vectors(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, n×dim bfloat16 vectors as uint16), memory-mapped read-only, from a stored-vectors file; None if
    missing or not such a file (wrong magic or size)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(32)
        size = os.stat(path).st_size
    except OSError:
        return None
    if len(header) != 32 or header[:8] != VECTORS_MAGIC:
        return None
    count, dim, _ = (int(v) for v in np.frombuffer(header[8:], dtype="<i8"))
    if count < 0 or dim <= 0 or size != 32 + 8 * count + 2 * count * dim:
        return None
    if count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.uint16)
    ids = np.memmap(path, dtype="<i8", mode="r", offset=32, shape=(count,))
    vectors = np.memmap(path, dtype="<u2", mode="r", offset=32 + 8 * count, shape=(count, dim))
    return ids, vectors


def _record_file(conn: sqlite3.Connection, table: str, gallery_id: int, digest: str, path: Path) -> None:
    identity = file_identity(path)
    with transaction(conn):
        conn.execute(f"INSERT OR REPLACE INTO {table} (gallery_id, sha256, bytes, identity, written_at) "
                     "VALUES (?, ?, ?, ?, ?)", (gallery_id, digest, identity[2], json.dumps(identity), utc_now()))


def write_recorded(conn: sqlite3.Connection, gallery_id: int, index, path: Path, rows=None) -> None:
    """Write the gallery's index file (atomically) and record its content hash, size and file identity, so a
    file changed by anything but leadmatch is known on open (`content_problem`). A two-stage index writes its
    stored vectors first (`rows`, else the index's own, in chunks), recorded the same way in `vector_files`;
    any other index removes a stored-vectors file left from an earlier two-stage build."""
    stored = vectors_path(path)
    if isinstance(index, TwoStage):
        rows = rows if rows is not None else (index.vectors[i:i + 65536] for i in range(0, len(index.ids), 65536))
        _record_file(conn, "vector_files", gallery_id, write_vectors(stored, index.ids, index.d, rows), stored)
        index = index.first
    else:
        with transaction(conn):
            conn.execute("DELETE FROM vector_files WHERE gallery_id = ?", (gallery_id,))
        stored.unlink(missing_ok=True)
    _record_file(conn, "index_files", gallery_id, write_atomic(index, path), path)


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


#: What each recorded file is called in messages.
FILE_NAMES = {"index_files": "index file", "vector_files": "stored-vectors file"}


def recorded_file(conn: sqlite3.Connection, gallery_id: int, table: str = "index_files") -> dict | None:
    """What the record says about the gallery's index file (or, with table "vector_files", its two-stage stored
    vectors) as last written: sha256, bytes, identity."""
    row = conn.execute(f"SELECT sha256, bytes, identity FROM {table} WHERE gallery_id = ?", (gallery_id,)).fetchone()
    return None if row is None else {"sha256": row[0], "bytes": row[1], "identity": tuple(json.loads(row[2]))}


def content_problem(conn: sqlite3.Connection, gallery_id: int, path: Path, identity: tuple | None,
                    recorded: dict | None = None, table: str = "index_files") -> str | None:
    """None if the file at `path` (the index, or with table "vector_files" its stored vectors) holds the bytes
    leadmatch recorded when it wrote it; else what is wrong.

    A file whose identity is the one recorded is unchanged; otherwise its sha256 is computed (the cold cost)
    and, if the bytes are the recorded ones (a copied or restored workspace), its new identity is recorded.
    """
    name = FILE_NAMES[table]
    recorded = recorded if recorded is not None else recorded_file(conn, gallery_id, table)
    if identity is None:
        return f"{name} is missing"
    if recorded is None:
        return f"{name} has no recorded content hash (written by an older leadmatch)"
    if identity == recorded["identity"]:
        return None
    if identity[2] != recorded["bytes"] or file_sha256(path) != recorded["sha256"]:
        return f"{name}'s sha256 differs from the recorded one (altered, or its write was cut short)"
    with transaction(conn):
        conn.execute(f"UPDATE {table} SET identity = ? WHERE gallery_id = ? AND sha256 = ?",
                     (json.dumps(identity), gallery_id, recorded["sha256"]))
    return None


def two_stage_problem(conn: sqlite3.Connection, gallery_id: int, index, path: Path) -> str | None:
    """For a two-stage index: what is wrong with its stored-vectors file (see `content_problem`), else None."""
    if not isinstance(index, TwoStage):
        return None
    stored = vectors_path(path)
    return content_problem(conn, gallery_id, stored, file_identity(stored), table="vector_files")


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


def read_gallery(path: Path, dim: int, mmap: bool = False):
    """The index at `path` for a gallery whose vectors are `dim` wide: a FAISS index, or for a fused gallery
    whose file holds a dlib-width first stage the `TwoStage` with its stored vectors (memory-mapped); None if
    missing, unreadable, or the two files do not hold the same faces. Without a readable stored-vectors file the
    first stage alone comes back (its width tells the caller it is not the gallery's index)."""
    first = read(path, mmap)
    if first is None or dim <= DIM or first.d != DIM:
        return first
    stored = read_vectors(vectors_path(path))
    if stored is None:
        return first
    if stored[1].shape[1] != dim:
        return None
    ids, vectors = stored
    if (len(ids), int(np.asarray(ids).sum())) != index_fingerprint(first):
        return None
    return TwoStage(first, ids, vectors)


def record_fingerprint(conn: sqlite3.Connection, gallery_id: int) -> tuple[int, int]:
    """(count, sum of ids) of the gallery's faces in the record, kept by triggers: catches any add or remove."""
    row = conn.execute("SELECT faces, id_sum FROM gallery_stats WHERE gallery_id = ?", (gallery_id,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def index_fingerprint(index) -> tuple[int, int]:
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
    return factory if buildable(factory, dim) else choose_factory(record_fingerprint(conn, gallery_id)[0], dim)


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
        if not buildable(factory, space.dim):  # a type kept from the gallery's other model (a two-stage for dlib)
            factory = choose_factory(len(ids), space.dim)
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
    dim = spaces.dim_of(conn, gallery_id)
    index = read_gallery(path, dim)
    if index is not None and index.d != dim:
        result = build_gallery(conn, indexes_dir, gallery_id, factory_for_model(conn, gallery_id, factory))
        if recorded_file(conn, gallery_id, "vector_files") is None or dim <= DIM:
            what = "index was made for another face model"
        else:  # a two-stage index whose stored vectors are gone or unreadable
            what = "stored-vectors file was missing or unreadable"
        return read_gallery(path, dim), (f"{what}; rebuilt for {result['model']} from the record "
                                         f"({result['faces']} faces)")
    if index is None:
        existed = path.exists()
        first = not existed and recorded_file(conn, gallery_id, "index_files") is None
        result = build_gallery(conn, indexes_dir, gallery_id, factory)
        if first:  # a gallery's first index (its first enrollment): nothing was lost, nothing to report
            return read_gallery(path, dim), None
        what = "unreadable" if existed else "missing"
        return read_gallery(path, dim), f"index file was {what}; rebuilt from the record ({result['faces']} faces)"
    with write_lock(path):
        index = read_gallery(path, dim) or index  # another writer may have finished while we waited
        # never patch a file whose bytes are not the ones leadmatch wrote: its vectors may not be the record's
        untrusted = (content_problem(conn, gallery_id, path, file_identity(path))
                     or two_stage_problem(conn, gallery_id, index, path))
        if untrusted is None and index_fingerprint(index) == record_fingerprint(conn, gallery_id):
            return index, None
        held = stored_ids(index)
        record_ids = np.array([r[0] for r in conn.execute(
            "SELECT id FROM faces WHERE gallery_id = ? ORDER BY id", (gallery_id,))], dtype=np.int64)
        extra = np.setdiff1d(held, record_ids)
        missing = np.setdiff1d(record_ids, held)
        first = index.first if isinstance(index, TwoStage) else index
        try:
            if len(extra) and untrusted is None:
                first.remove_ids(faiss.IDSelectorArray(extra))
        except RuntimeError:  # HNSW cannot remove: rebuild it whole
            extra_note = len(extra)
        else:
            extra_note = None
        if extra_note is None and untrusted is None:
            added = spaces.vectors_for(conn, missing, spaces.of_gallery(conn, gallery_id))
            if len(missing):
                first.add_with_ids(np.ascontiguousarray(added[:, :first.d]), missing)
            if isinstance(index, TwoStage):
                write_recorded(conn, gallery_id, TwoStage(first, record_ids, np.zeros((0, dim), np.uint16)), path,
                               rows=_merged_rows(index, record_ids, missing, added))
                index = read_gallery(path, dim)
            else:
                write_recorded(conn, gallery_id, index, path)
            with transaction(conn):  # the gallery changed: so did its impostor distances
                calibration.refresh(conn, gallery_id, index)
    if untrusted is not None:
        result = build_gallery(conn, indexes_dir, gallery_id, factory)
        return read_gallery(path, dim), f"{untrusted}; rebuilt from the record ({result['faces']} faces)"
    if extra_note is not None:
        build_gallery(conn, indexes_dir, gallery_id, factory)
        return (read_gallery(path, dim),
                f"index rebuilt to remove {extra_note} faces (this index type cannot remove in place)")
    return index, f"index was out of step with the record: added {len(missing)}, removed {len(extra)} faces"


def _merged_rows(old: TwoStage, ids: np.ndarray, missing: np.ndarray, added: np.ndarray, chunk: int = 65536):
    """The stored vectors for `ids` (ascending), a chunk at a time: kept rows from `old`'s file, the `missing`
    ids' rows from `added` (their fused vectors, in `missing`'s ascending order)."""
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        out = np.empty((len(part), old.d), dtype=np.uint16)
        at = np.minimum(np.searchsorted(old.ids, part), max(0, len(old.ids) - 1))
        kept = (np.asarray(old.ids)[at] == part) if len(old.ids) else np.zeros(len(part), bool)
        out[kept] = old.vectors[at[kept]]
        out[~kept] = to_bfloat16(added[np.searchsorted(missing, part[~kept])])
        yield out


#: Indexes this process has opened, by path: (file identities, index, its fingerprint, the recorded sha256s its
#: content was checked against; for a two-stage index both its files'). A writer renames a new file into place,
#: which changes the identity, so a kept index is never used after a file was replaced or rewritten, and its
#: content is checked once per identity.
_opened: dict[Path, tuple[tuple, object, tuple[int, int], tuple]] = {}


def _open_for_search(conn: sqlite3.Connection, gallery_id: int, path: Path) -> tuple[object, tuple[int, int] | None]:
    """The kept or freshly opened index and its fingerprint; (None, None) if missing, unreadable or not the
    bytes leadmatch wrote (the repair path then says which)."""
    identity = file_identity(path)
    if identity is None:
        return None, None
    recorded = recorded_file(conn, gallery_id)
    dim = spaces.dim_of(conn, gallery_id)
    stored = recorded_file(conn, gallery_id, "vector_files") if dim > DIM else None
    identities = (identity, file_identity(vectors_path(path)) if stored else None)
    hashes = (recorded and recorded["sha256"], stored and stored["sha256"])
    kept = _opened.get(path)
    if kept and recorded and kept[0] == identities and kept[3] == hashes:
        return kept[1], kept[2]
    if content_problem(conn, gallery_id, path, identity, recorded) is not None:
        return None, None
    index = read_gallery(path, dim, mmap=True)
    if index is None or two_stage_problem(conn, gallery_id, index, path) is not None:
        return None, None
    fingerprint = index_fingerprint(index)
    _opened[path] = (identities, index, fingerprint, hashes)
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
