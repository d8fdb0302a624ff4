"""The workspace's audit key: its file (mode 0600, never printed), and the HMAC it makes, bound to a
connection as an SQL function so the key stays in this process."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from leadmatch.errors import WorkspaceError

KEY_FORMAT = "leadmatch-audit-key/1"
MAC_FUNCTION = "leadmatch_audit_mac"      # SQL function bound to a connection: the key stays in this process
STATE_FUNCTION = "leadmatch_audit_state"  # what the key file says besides the key (old entries, seal)


def canonical(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass
class AuditKey:
    """The workspace's audit key and what its file records: the number of entries written before the key
    existed (`legacy_entries`, verified once with the old rule) and the entry that sealed them (`seal`)."""

    secret: bytes = field(repr=False)
    created_at: str
    legacy_entries: int = 0
    seal: dict | None = None

    def mac(self, purpose: str, message: str) -> str:
        """HMAC-SHA256 of `message`, separated by `purpose` so an entry MAC never serves as a checkpoint's."""
        return hmac.new(self.secret, f"leadmatch audit {purpose} v1\n{message}".encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def state(self) -> str:
        return json.dumps({"legacy_entries": self.legacy_entries, "seal": self.seal})


def read_key(path: Path) -> AuditKey | None:
    """The audit key at `path`, or None if there is no file. A file that is not a key is an error."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != KEY_FORMAT:
            raise ValueError
        return AuditKey(bytes.fromhex(data["key"]), data["created_at"], int(data["legacy_entries"]),
                        data.get("seal"))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise WorkspaceError(f"cannot read the audit key {path}",
                             "run leadmatch as the account that owns the workspace") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise WorkspaceError(f"{path} is not a leadmatch audit key",
                             "restore keys/audit.key from the workspace's backup") from None


def write_key(path: Path, key: AuditKey) -> None:
    """Write the key file readable by its owner only (mode 0600, folder 0700), through a temp file."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    body = json.dumps({"format": KEY_FORMAT, "key": key.secret.hex(), "created_at": key.created_at,
                       "legacy_entries": key.legacy_entries, "seal": key.seal}, indent=1) + "\n"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, body.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temp, path)


def bind(conn: sqlite3.Connection, key: AuditKey) -> None:
    conn.create_function(MAC_FUNCTION, 2, key.mac, deterministic=True)
    conn.create_function(STATE_FUNCTION, 0, key.state)


def mac(conn: sqlite3.Connection, purpose: str, message: str) -> str:
    try:
        return conn.execute(f"SELECT {MAC_FUNCTION}(?, ?)", (purpose, message)).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "no such function" not in str(exc):
            raise
        raise WorkspaceError("this connection holds no audit key",
                             "open the workspace with leadmatch (workspace.open_workspace)") from None


def key_state(conn: sqlite3.Connection) -> dict:
    mac(conn, "probe", "")  # raises the clear error when no key is bound
    return json.loads(conn.execute(f"SELECT {STATE_FUNCTION}()").fetchone()[0])
