"""SQLite, the record: galleries, subjects, photos, faces and their embeddings, searches, audit.

Every index is derived from these tables. Changes go through `transaction()`, so a failure leaves nothing
half written. The schema is built by the numbered SQL files in `migrations/` (one step each; `PRAGMA
user_version` is the last applied) and migrated forward on open; `tests/data/schema.sql` is its reviewed snapshot.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from leadmatch.lazy import lazy

np = lazy("numpy")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def migrations() -> list[tuple[int, str, str]]:
    """The schema's migrations in order: (number, name, SQL) from `record/migrations/NNNN_name.sql`, one file a
    step, numbered from 1 without gaps (`PRAGMA user_version` is the number of the last one applied)."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append((int(number), name, path.read_text(encoding="utf-8")))
    if [number for number, _, _ in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"the migrations in {MIGRATIONS_DIR} are not numbered 1 to {len(found)} without gaps")
    return found


MIGRATIONS: list[str] = [sql for _, _, sql in migrations()]


def utc_now() -> str:
    """Current UTC time as ISO 8601 with microseconds and a Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in autocommit mode (we issue BEGIN ourselves), WAL, foreign keys on, schema migrated."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations the database has not seen yet, each in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with transaction(conn):
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


def statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN … END;) whole."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception. Nested use joins the outer transaction."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:  # a COMMIT that failed (a full disk) may leave the transaction open: end it
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


#: What a write that found no room says: no space, over the quota, over the file size limit.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` means the disk holding the workspace (or an upload) is full: an OSError with ENOSPC,
    EDQUOT or EFBIG, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)


@contextlib.contextmanager
def transition(conn: sqlite3.Connection, keep: type[BaseException] | tuple = ()):
    """One BEGIN IMMEDIATE transaction for a state check and the write it allows, so no other writer can change
    the state in between. An exception of a `keep` type (a refusal, whose audit entry was written inside) commits
    what was written before it, then propagates; any other exception rolls everything back."""
    kept: BaseException | None = None
    with transaction(conn):
        try:
            yield conn
        except keep as exc:
            kept = exc
    if kept is not None:
        raise kept


def embedding_to_blob(vector: np.ndarray) -> bytes:
    """128 float32 values as little-endian bytes."""
    return np.asarray(vector, dtype="<f4").tobytes()


def blob_to_embedding(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def gallery_embeddings(conn: sqlite3.Connection, gallery_id: int) -> tuple[np.ndarray, np.ndarray]:
    """All of a gallery's face ids (int64) and embeddings (n×128 float32), in id order."""
    rows = conn.execute("SELECT id, embedding FROM faces WHERE gallery_id = ? ORDER BY id", (gallery_id,)).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if not rows:
        return ids, np.zeros((0, 128), dtype=np.float32)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return ids, np.ascontiguousarray(vectors, dtype=np.float32)


def embeddings_for(conn: sqlite3.Connection, face_ids: np.ndarray) -> np.ndarray:
    """Stored embeddings of `face_ids`, in that order (n×128 float32), read 500 ids a query."""
    out = np.zeros((len(face_ids), 128), dtype=np.float32)
    position = {int(f): i for i, f in enumerate(face_ids)}
    ids = [int(f) for f in face_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for face_id, blob in conn.execute(
                f"SELECT id, embedding FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[position[face_id]] = np.frombuffer(blob, dtype="<f4")
    return out
