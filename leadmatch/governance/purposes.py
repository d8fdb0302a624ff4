"""Authorized purposes: the offense categories a search may name. Admins add to the list and retire from it
(a retired purpose stays in the record, for the searches that named it, but no new search may name it); it
starts with a default set of serious-crime categories."""

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
    """The purposes a new search may name (retired ones left out), by name."""
    ensure_defaults(ws)
    return [r[0] for r in ws.conn.execute("SELECT name FROM purposes WHERE retired_at IS NULL ORDER BY name")]


def retired(ws: Workspace) -> list[dict]:
    """The retired purposes, by name: {name, retired_at, retired_by}."""
    ensure_defaults(ws)
    return [dict(r) for r in ws.conn.execute(
        "SELECT name, retired_at, retired_by FROM purposes WHERE retired_at IS NOT NULL ORDER BY name")]


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


def retire(ws: Workspace, actor: Actor, name: str) -> dict:
    """Admin: take a purpose off the list new searches choose from (audited); answers {name, retired_at,
    retired_by}. Searches that named it keep it."""
    name = (name or "").strip().lower()
    require(ws, actor, "admin", "purposes.retire", objects={"purpose": name})
    ensure_defaults(ws)
    try:
        with transaction(ws.conn):
            row = ws.conn.execute("SELECT retired_at FROM purposes WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise InputError(f"no purpose named {name!r}", "see `leadmatch purposes`")
            if row["retired_at"]:
                raise InputError(f"purpose {name!r} was already retired on {row['retired_at'][:10]}",
                                 "nothing to do")
            if len(list_all(ws)) == 1:
                raise InputError(f"purpose {name!r} is the last one a search could name",
                                 "authorize another purpose first")
            now = utc_now()
            ws.conn.execute("UPDATE purposes SET retired_at = ?, retired_by = ? WHERE name = ?", (now, actor.name, name))
            audit.record(ws.conn, actor.name, "purposes.retire", objects={"purpose": name})
    except InputError as exc:
        audit.record(ws.conn, actor.name, "purposes.retire", "refused", objects={"purpose": name},
                     reason=f"bad-input: {exc.message}")
        raise
    return {"name": name, "retired_at": now, "retired_by": actor.name}


def retirement(ws: Workspace, name: str) -> dict | None:
    """{retired_at, retired_by} of a retired purpose, else None."""
    row = ws.conn.execute("SELECT retired_at, retired_by FROM purposes WHERE name = ? AND retired_at IS NOT NULL",
                          ((name or "").strip().lower(),)).fetchone()
    return dict(row) if row else None


def is_authorized(ws: Workspace, name: str) -> bool:
    return (name or "").strip().lower() in list_all(ws)
