"""The workspace: one folder holding the SQLite record, the derived indexes and the stored photos.

    <home>/leadmatch.db      the record (source of truth)
    <home>/indexes/          FAISS indexes, one per gallery, rebuilt from the record when missing or stale
    <home>/photos/ab/<sha>   enrolled gallery photos and searched probes, content-addressed
    <home>/keys/audit.key    the audit trail's HMAC key (mode 0600): held by the workspace's owner, never in the
                             database, never printed

Every folder is created 0700 and every file 0600, whatever the umask (`keep_private` sets the process's umask
when a workspace is opened or created; files are also created with explicit modes).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from leadmatch.record import audit
from leadmatch.record import store
from leadmatch.errors import DiskFull, WorkspaceError

#: Whatever the caller's umask, what leadmatch creates is its account's alone: folders 0700, files 0600.
PRIVATE_UMASK = 0o077
DB_NAME = "leadmatch.db"
AUDIT_KEY = Path("keys") / "audit.key"
HOME_ENV = "LEADMATCH_HOME"


def default_home() -> Path:
    """`$LEADMATCH_HOME`, else the current folder (whose `indexes/` then holds the indexes)."""
    return Path(os.environ.get(HOME_ENV) or ".").expanduser()


@dataclass
class Workspace:
    """An opened workspace. `conn` is its SQLite connection."""

    home: Path
    conn: sqlite3.Connection = field(repr=False)

    @property
    def indexes(self) -> Path:
        return self.home / "indexes"

    @property
    def photos(self) -> Path:
        return self.home / "photos"

    def store_photo(self, data: bytes, sha256: str, suffix: str = "") -> Path:
        """Keep a copy of a photo under its content hash (written to a temp file, then renamed)."""
        target = self.photos / sha256[:2] / (sha256 + suffix.lower())
        if not target.exists():
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                write_private(temp, data)
                os.replace(temp, target)
            finally:  # a write that failed (a full disk) leaves no partial file behind
                temp.unlink(missing_ok=True)
        return target

    def release_photo(self, relative: str | None) -> bool:
        """Delete a stored photo file once no gallery photo or search refers to it. Returns whether it went."""
        if not relative:
            return False
        used = self.conn.execute(
            "SELECT 1 FROM photos WHERE stored_path = ? UNION ALL SELECT 1 FROM searches WHERE probe_stored_path = ? "
            "OR instr(probe_frames, ?) > 0 OR instr(details, ?) > 0 UNION ALL SELECT 1 FROM case_media "
            "WHERE stored_path = ? AND purged_at IS NULL UNION ALL SELECT 1 FROM case_faces WHERE image_path = ? "
            "LIMIT 1", (relative, relative, f'"{relative}"', f'"{relative}"', relative, relative)).fetchone()
        path = self.home / relative
        if used or not path.exists():
            return False
        path.unlink()
        return True

    def close(self) -> None:
        self.conn.close()


def keep_private() -> None:
    """From now on, files and folders this process creates get no group or other access (the record holds
    cases, justifications, password hashes and face embeddings; photos are faces)."""
    os.umask(PRIVATE_UMASK)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` as a file of mode 0600 (replacing one there), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def init(home: Path) -> tuple[Workspace, bool]:
    """Create (or open) the workspace at `home`, private to this account (0700; a new database 0600, and its
    WAL files with it). Returns (workspace, created)."""
    keep_private()
    home = Path(home)
    created = not (home / DB_NAME).exists()
    try:
        for folder in (home, home / "indexes", home / "photos"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created:  # a folder made beforehand (mkdir under umask 022) becomes private with its first record
            home.chmod(0o700)
            os.close(os.open(home / DB_NAME, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise WorkspaceError(f"cannot create workspace at {home}: {exc.strerror}", "choose a writable --home") from None
    return Workspace(home=home, conn=_connect(home)), created


def open_workspace(home: Path) -> Workspace:
    """Open an existing workspace, or say to run `leadmatch init`."""
    home = Path(home)
    if not (home / DB_NAME).is_file():
        raise WorkspaceError(f"no leadmatch workspace at {home.resolve()}",
                             f"run `leadmatch --home {home} init` first, or set {HOME_ENV}")
    keep_private()
    (home / "indexes").mkdir(mode=0o700, exist_ok=True)
    (home / "photos").mkdir(mode=0o700, exist_ok=True)
    return Workspace(home=home, conn=_connect(home))


def _no_room(home: Path) -> bool:
    """Whether the file system holding `home` has (almost) no space left for an unprivileged writer."""
    try:
        info = os.statvfs(home)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < 64 * 1024


def _connect(home: Path) -> sqlite3.Connection:
    try:
        conn = store.connect(home / DB_NAME)
    except sqlite3.DatabaseError as exc:
        if store.is_disk_full(exc) or _no_room(home):  # SQLite could not create its -wal/-shm files
            raise DiskFull() from None
        raise WorkspaceError(f"{home / DB_NAME} is not a usable leadmatch database ({exc})",
                             "restore it from backup or choose another --home") from None
    try:  # the audit key signs every entry this connection appends; created here for a new or pre-key workspace
        audit.attach_key(conn, home / AUDIT_KEY)
    except OSError as exc:
        conn.close()
        raise WorkspaceError(f"cannot create the audit key {home / AUDIT_KEY}: {exc.strerror}",
                             "run leadmatch as the account that owns the workspace") from None
    except BaseException:
        conn.close()
        raise
    return conn
