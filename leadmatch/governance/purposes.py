"""Authorized purposes: the offense categories a search may name. Admins add to the list; it starts with
a default set of serious-crime categories."""

from __future__ import annotations

from leadmatch import safetext
from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, require
from leadmatch.errors import InputError
from leadmatch.record.store import transaction, utc_now
from leadmatch.record.workspace import Workspace

DEFAULT_PURPOSES = (
    "homicide", "kidnapping", "sexual-assault", "robbery", "aggravated-assault", "human-trafficking",
    "child-exploitation", "terrorism", "missing-person", "identity-fraud", "burglary", "arson",
)


def ensure_defaults(ws: Workspace) -> None:
    """Install the default list the first time (never re-adds after an admin has shaped the list)."""
    if ws.conn.execute("SELECT 1 FROM settings WHERE key = 'purposes_seeded'").fetchone():
        return
    with transaction(ws.conn):
        now = utc_now()
        ws.conn.executemany("INSERT OR IGNORE INTO purposes (name, added_by, added_at) VALUES (?, '(default)', ?)",
                            [(p, now) for p in DEFAULT_PURPOSES])
        ws.conn.execute("INSERT INTO settings (key, value) VALUES ('purposes_seeded', ?)", (now,))


def list_all(ws: Workspace) -> list[str]:
    ensure_defaults(ws)
    return [r[0] for r in ws.conn.execute("SELECT name FROM purposes ORDER BY name")]


def add(ws: Workspace, actor: Actor, name: str) -> str:
    """Admin: authorize a new purpose."""
    require(ws, actor, "admin", "purposes.add", objects={"purpose": name})
    name = (name or "").strip().lower()
    if not name or len(name) > 80:
        raise InputError("purpose name is empty or longer than 80 characters", "give a short offense category")
    safetext.check_name(name, "purpose")
    ensure_defaults(ws)
    with transaction(ws.conn):
        if ws.conn.execute("SELECT 1 FROM purposes WHERE name = ?", (name,)).fetchone():
            raise InputError(f"purpose {name!r} is already authorized", "see `leadmatch purposes`")
        ws.conn.execute("INSERT INTO purposes (name, added_by, added_at) VALUES (?, ?, ?)", (name, actor.name, utc_now()))
        audit.record(ws.conn, actor.name, "purposes.add", objects={"purpose": name})
    return name


def is_authorized(ws: Workspace, name: str) -> bool:
    return (name or "").strip().lower() in list_all(ws)
