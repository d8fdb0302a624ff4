"""SQLite, the record: galleries, subjects, photos, faces and their embeddings, searches, audit.

Every index is derived from these tables. Changes go through `transaction()`, so a failure leaves nothing
half written. The schema is versioned with `PRAGMA user_version` and migrated forward on open.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

MIGRATIONS: list[str] = [
    # 1: galleries, enrollment, searches, audit.
    """
    CREATE TABLE galleries (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        authority TEXT NOT NULL,
        approved_by TEXT NOT NULL,
        approved_on TEXT NOT NULL,
        source TEXT NOT NULL,
        retention_days INTEGER NOT NULL,
        index_factory TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE subjects (
        id INTEGER PRIMARY KEY,
        gallery_id INTEGER NOT NULL REFERENCES galleries(id),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (gallery_id, name)
    );
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        gallery_id INTEGER NOT NULL REFERENCES galleries(id),
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        source_path TEXT NOT NULL,
        stored_path TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        enrolled_at TEXT NOT NULL,
        enrolled_by TEXT NOT NULL,
        UNIQUE (gallery_id, sha256)
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        gallery_id INTEGER NOT NULL REFERENCES galleries(id),
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        box_top INTEGER NOT NULL, box_right INTEGER NOT NULL, box_bottom INTEGER NOT NULL, box_left INTEGER NOT NULL,
        size_px INTEGER NOT NULL,
        eye_distance_px REAL NOT NULL,
        sharpness REAL NOT NULL,
        detector_score REAL,
        embedding BLOB NOT NULL
    );
    CREATE INDEX faces_gallery ON faces (gallery_id, id);
    CREATE TABLE enrollment_refusals (
        id INTEGER PRIMARY KEY,
        gallery_id INTEGER NOT NULL REFERENCES galleries(id),
        source_path TEXT NOT NULL,
        sha256 TEXT,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        refused_at TEXT NOT NULL
    );
    CREATE TABLE searches (
        id TEXT PRIMARY KEY,
        case_number TEXT NOT NULL,
        gallery_id INTEGER NOT NULL REFERENCES galleries(id),
        agent TEXT NOT NULL,
        created_at TEXT NOT NULL,
        probe_sha256 TEXT NOT NULL,
        probe_name TEXT NOT NULL,
        probe_stored_path TEXT,
        faces_in_probe INTEGER NOT NULL,
        face_index INTEGER NOT NULL,
        box TEXT NOT NULL,
        quality TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '[]',
        top_k INTEGER NOT NULL,
        threshold REAL NOT NULL,
        index_type TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX searches_case ON searches (case_number);
    CREATE TABLE candidates (
        search_id TEXT NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        face_id INTEGER NOT NULL,
        subject TEXT NOT NULL,
        photo_sha256 TEXT NOT NULL,
        image TEXT NOT NULL,
        box TEXT NOT NULL,
        distance REAL NOT NULL,
        score REAL NOT NULL,
        within_threshold INTEGER NOT NULL,
        PRIMARY KEY (search_id, rank)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        case_number TEXT,
        search_id TEXT,
        objects TEXT NOT NULL,
        reason TEXT,
        photo_sha256 TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 2: governance — accounts, certification, purposes, the search workflow, retention.
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        roles TEXT NOT NULL,
        disabled_at TEXT,
        rules_accepted_at TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE certifications (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        course TEXT NOT NULL,
        completed_on TEXT NOT NULL,
        expires_on TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        ended_at TEXT
    );
    CREATE TABLE purposes (
        name TEXT PRIMARY KEY,
        added_by TEXT NOT NULL,
        added_at TEXT NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ALTER TABLE searches ADD COLUMN purpose TEXT;
    ALTER TABLE searches ADD COLUMN justification TEXT;
    ALTER TABLE searches ADD COLUMN traditional_means TEXT;
    ALTER TABLE searches ADD COLUMN probe_source TEXT NOT NULL DEFAULT 'original';
    ALTER TABLE searches ADD COLUMN status TEXT NOT NULL DEFAULT 'awaiting-disposition';
    ALTER TABLE searches ADD COLUMN closed_at TEXT;
    ALTER TABLE searches ADD COLUMN closed_by TEXT;
    ALTER TABLE searches ADD COLUMN closure_rank INTEGER;
    ALTER TABLE searches ADD COLUMN closure_note TEXT;
    ALTER TABLE searches ADD COLUMN purged_at TEXT;
    CREATE INDEX searches_status ON searches (status);
    CREATE TABLE dispositions (
        search_id TEXT NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        decision TEXT NOT NULL,
        note TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        PRIMARY KEY (search_id, rank)
    );
    CREATE TABLE corroborations (
        id INTEGER PRIMARY KEY,
        search_id TEXT NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        evidence_type TEXT NOT NULL,
        evidence TEXT NOT NULL,
        reference TEXT NOT NULL,
        outcome TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    """,
    # 3: a search's history is read on every search and `show`; the audit table only grows.
    """
    CREATE INDEX audit_search ON audit (search_id);
    CREATE INDEX audit_case ON audit (case_number);
    """,
    # 4: what each gallery's index was built as, and its last self-check.
    """
    CREATE TABLE index_builds (
        gallery_id INTEGER PRIMARY KEY REFERENCES galleries(id),
        factory TEXT NOT NULL,
        nprobe INTEGER,
        trained_on INTEGER NOT NULL,
        built_max_face_id INTEGER NOT NULL,
        built_at TEXT NOT NULL,
        build_seconds REAL NOT NULL,
        self_check TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 5: each gallery's (face count, sum of face ids), kept by triggers in the same transaction as the change,
    # so checking an index against the record costs one row read instead of a scan of the gallery's faces.
    """
    CREATE TABLE gallery_stats (
        gallery_id INTEGER PRIMARY KEY,
        faces INTEGER NOT NULL DEFAULT 0,
        id_sum INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO gallery_stats (gallery_id, faces, id_sum)
        SELECT g.id, count(f.id), coalesce(sum(f.id), 0) FROM galleries g LEFT JOIN faces f ON f.gallery_id = g.id
        GROUP BY g.id;
    CREATE TRIGGER faces_added AFTER INSERT ON faces BEGIN
        INSERT OR IGNORE INTO gallery_stats (gallery_id) VALUES (NEW.gallery_id);
        UPDATE gallery_stats SET faces = faces + 1, id_sum = id_sum + NEW.id WHERE gallery_id = NEW.gallery_id;
    END;
    CREATE TRIGGER faces_removed AFTER DELETE ON faces BEGIN
        UPDATE gallery_stats SET faces = faces - 1, id_sum = id_sum - OLD.id WHERE gallery_id = OLD.gallery_id;
    END;
    """,
    # 6: hardening — one refusal row per photo and reason (re-running an enrollment used to add them again), and the exact
    # bytes of source names that are not valid UTF-8 (source_path then holds them with the odd bytes escaped).
    # A chosen index type that no build ever made was recorded by a build that failed or was killed: forget it.
    """
    UPDATE galleries SET index_factory = NULL WHERE index_factory IS NOT NULL AND index_factory IS NOT
        (SELECT factory FROM index_builds WHERE index_builds.gallery_id = galleries.id);
    DELETE FROM enrollment_refusals WHERE id NOT IN (
        SELECT max(id) FROM enrollment_refusals GROUP BY gallery_id, source_path, reason);
    CREATE UNIQUE INDEX enrollment_refusals_once ON enrollment_refusals (gallery_id, source_path, reason);
    ALTER TABLE enrollment_refusals ADD COLUMN source_path_raw BLOB;
    ALTER TABLE photos ADD COLUMN source_path_raw BLOB;
    """,
    # 7: integrity — each audit entry's HMAC under the workspace's key (NULL for entries written before keys),
    # and each index file's content hash as written, with the file's identity (device, inode, size, mtime_ns,
    # ctime_ns) right after the write, so an unchanged file is known without hashing it again.
    """
    ALTER TABLE audit ADD COLUMN mac TEXT;
    CREATE TABLE index_files (
        gallery_id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        identity TEXT NOT NULL,
        written_at TEXT NOT NULL
    );
    """,
    # 8: probes — a search's probe faces (photo, stills or a clip's frames) and subject-level candidate lists.
    """
    ALTER TABLE searches ADD COLUMN probe_frames TEXT;
    ALTER TABLE candidates ADD COLUMN faces TEXT;
    ALTER TABLE candidates ADD COLUMN probe_distances TEXT;
    """,
    # 9: thresholds calibrated to each gallery (issue 15): its target FPIR (NULL: 1 %), the calibration kept with
    # its index build and copied into each search, each candidate's estimated false-alarm rate, and the quality
    # flags of a gallery face enrolled below the recommended level.
    """
    ALTER TABLE galleries ADD COLUMN target_fpir REAL;
    ALTER TABLE index_builds ADD COLUMN calibration TEXT;
    ALTER TABLE searches ADD COLUMN calibration TEXT;
    ALTER TABLE candidates ADD COLUMN false_alarm_rate REAL;
    ALTER TABLE faces ADD COLUMN quality_flags TEXT NOT NULL DEFAULT '[]';
    """,
    # 10: a subject's faces are read on every search (a candidate lists all its photos) and on removal; without
    # this index each read scanned the gallery's faces (160 ms at 1M faces).
    """
    CREATE INDEX faces_subject ON faces (subject_id);
    """,
    # 11: the service's sign-in throttle (issue 19), kept here so a restart does not reset it: failed attempts
    # per account at an address and per address (scope 'address', name ''), and the addresses each account
    # signed in from (those are not slowed by their address's count).
    """
    CREATE TABLE sign_in_failures (
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (scope, name, address)
    );
    CREATE INDEX sign_in_failures_age ON sign_in_failures (last_at);
    CREATE TABLE sign_in_addresses (
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        last_ok_at TEXT NOT NULL,
        PRIMARY KEY (name, address)
    );
    """,
    # 12: each gallery's face model (issue 23: dlib, or dlib+faceres), each face's unit FaceRes descriptor
    # (1024 float32s; NULL for faces of dlib galleries), and the fusion scales an index build was made with.
    """
    ALTER TABLE galleries ADD COLUMN model TEXT NOT NULL DEFAULT 'dlib';
    ALTER TABLE faces ADD COLUMN faceres BLOB;
    ALTER TABLE index_builds ADD COLUMN fusion TEXT;
    """,
    # 13: case media (issue 22) — files added to a case, the faces found in them, the persons they are grouped
    # into and every change to that grouping (merge, split, drop, undo), kept so a change can be undone.
    """
    CREATE TABLE case_media (
        id INTEGER PRIMARY KEY,
        case_number TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        stored_path TEXT,
        bytes INTEGER NOT NULL,
        model TEXT NOT NULL,
        purpose TEXT NOT NULL,
        justification TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}',
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL,
        purged_at TEXT,
        UNIQUE (case_number, sha256)
    );
    CREATE TABLE case_persons (
        id INTEGER PRIMARY KEY,
        case_number TEXT NOT NULL,
        label TEXT NOT NULL,
        origin TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        dropped_at TEXT,
        dropped_by TEXT,
        drop_reason TEXT,
        UNIQUE (case_number, label)
    );
    CREATE TABLE case_faces (
        id INTEGER PRIMARY KEY,
        media_id INTEGER NOT NULL REFERENCES case_media(id) ON DELETE CASCADE,
        case_number TEXT NOT NULL,
        person_id INTEGER REFERENCES case_persons(id),
        track INTEGER,
        time_s REAL,
        face_index INTEGER NOT NULL,
        box TEXT NOT NULL,
        quality TEXT NOT NULL,
        quality_score REAL NOT NULL,
        usable INTEGER NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_path TEXT,
        details TEXT NOT NULL DEFAULT '{}',
        embedding BLOB NOT NULL
    );
    CREATE INDEX case_faces_case ON case_faces (case_number, person_id);
    CREATE TABLE case_person_changes (
        id INTEGER PRIMARY KEY,
        case_number TEXT NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        undone_by INTEGER
    );
    """,
]


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
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> list[str]:
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
