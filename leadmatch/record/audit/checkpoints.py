"""Signed checkpoints of the chain's head, filed outside the system and passed back to verification."""

from __future__ import annotations

import hmac
import json
import sqlite3
from pathlib import Path

from leadmatch.errors import InputError
from leadmatch.record.audit.chain import record
from leadmatch.record.audit.keys import canonical, mac
from leadmatch.record.store import transaction

CHECKPOINT_FORMAT = "leadmatch-audit-checkpoint/1"
CHECKPOINT_FIELDS = ("format", "entry", "hash", "mac", "at", "made_by")


def checkpoint(conn: sqlite3.Connection, actor: str) -> dict:
    """Append an `audit.checkpoint` entry and return the signed checkpoint of it (the new head): format, entry
    id, hash, HMAC, time, who made it, and a signature over those under the key. File it outside the system."""
    with transaction(conn):
        entry_id = record(conn, actor, "audit.checkpoint")
        row = conn.execute("SELECT id, hash, mac, at FROM audit WHERE id = ?", (entry_id,)).fetchone()
    made = {"format": CHECKPOINT_FORMAT, "entry": row["id"], "hash": row["hash"], "mac": row["mac"],
            "at": row["at"], "made_by": actor}
    return made | {"signature": mac(conn, "checkpoint", canonical(made))}


def signature_ok(conn: sqlite3.Connection, made: dict) -> bool:
    expected = mac(conn, "checkpoint", canonical({f: made[f] for f in CHECKPOINT_FIELDS}))
    return hmac.compare_digest(expected, made["signature"])


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file as written by `leadmatch audit checkpoint`, its shape checked (not yet its signature)."""
    try:
        made = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no checkpoint file {path}", CHECKPOINT_HINT) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read checkpoint {path}: {getattr(exc, 'strerror', None) or 'not JSON'}",
                         CHECKPOINT_HINT) from None
    return checked_checkpoint(made, str(path))


CHECKPOINT_HINT = "pass the file that `leadmatch audit checkpoint --out FILE` wrote"


def checked_checkpoint(made, source: str = "the checkpoint") -> dict:
    """`made` if it has a checkpoint's shape (format, entry, time, author, three sha256-sized hex fields)."""
    hexes = ("hash", "mac", "signature")
    if not isinstance(made, dict) or made.get("format") != CHECKPOINT_FORMAT \
            or not isinstance(made.get("entry"), int) or isinstance(made.get("entry"), bool) or made["entry"] < 1 \
            or not all(isinstance(made.get(f), str) for f in ("at", "made_by", *hexes)) \
            or not all(len(made[f]) == 64 and all(c in "0123456789abcdef" for c in made[f]) for f in hexes):
        raise InputError(f"{source} is not a leadmatch audit checkpoint", CHECKPOINT_HINT)
    return made
