"""Reading the trail: entries matching filters, a page at a time (newest first), the actions and outcomes it
holds, and the objects an entry names (its search, case, gallery and users), for the auditor's pages and CLI."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, replace

#: Entries on one page when the reader does not say; the most one page may hold.
PER_PAGE = 50
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class Filters:
    """Which entries to read; None (or "") matches any. `action` matches that action and the actions under it
    (`audit` matches `audit.verify`); `since` and `until` are UTC times or dates compared with the entry's time,
    `since` inclusive and `until` exclusive; `upto` is the newest entry id read (the trail's head when a reader
    started paging: entries added since do not shift the pages under them)."""

    case: str | None = None
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None
    search_id: str | None = None
    upto: int | None = None

    def described(self) -> dict:
        """The filters given, for the audit entry that records this reading."""
        return {key: value for key, value in asdict(self).items() if value}


def where(filters: Filters) -> tuple[str, list]:
    """The SQL condition (" WHERE …" or "") and its parameters for `filters`."""
    clauses, params = [], []
    for column, value, op in (("case_number", filters.case, "="), ("actor", filters.actor, "="),
                              ("outcome", filters.outcome, "="), ("at", filters.since, ">="),
                              ("at", filters.until, "<"), ("search_id", filters.search_id, "=")):
        if value:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    if filters.upto is not None:
        clauses.append("id <= ?")
        params.append(filters.upto)
    if filters.action:
        prefix = filters.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("(action = ? OR action LIKE ? ESCAPE '\\')")
        params += [filters.action, prefix + ".%"]
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def decoded(raw: sqlite3.Row) -> dict:
    """An entry as a dict, its `objects` and `photo_sha256` decoded from JSON."""
    row = dict(raw)
    row["objects"] = json.loads(row["objects"])
    row["photo_sha256"] = json.loads(row["photo_sha256"])
    return row


def page(conn: sqlite3.Connection, filters: Filters, number: int = 1, per_page: int = PER_PAGE) -> dict:
    """Page `number` (from 1) of the entries matching `filters`, newest first: {entries, total, page, pages,
    per_page, upto, newer}. Without `filters.upto` the pages are those of the trail as it is now (`upto` its head
    id); `newer` counts the entries written after `upto`. A page past the last is empty."""
    head = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
    if filters.upto is None:
        filters = replace(filters, upto=head)
    condition, params = where(filters)
    total = conn.execute(f"SELECT count(*) FROM audit{condition}", params).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM audit{condition} ORDER BY id DESC LIMIT ? OFFSET ?",
                        [*params, per_page, (number - 1) * per_page])
    return {"entries": [decoded(r) for r in rows], "total": total, "page": number,
            "pages": max(1, math.ceil(total / per_page)), "per_page": per_page, "upto": filters.upto,
            "newer": max(0, head - filters.upto)}


def choices(conn: sqlite3.Connection) -> dict:
    """What the trail holds to filter by: its actions and outcomes, sorted."""
    return {column + "s": [r[0] for r in conn.execute(f"SELECT DISTINCT {column} FROM audit ORDER BY 1")]
            for column in ("action", "outcome")}


#: Keys of an entry's `objects` that name a user or a gallery.
USER_KEYS = ("user",)
GALLERY_KEYS = ("gallery",)


def named_objects(entry: dict) -> list[tuple[str, str]]:
    """The objects `entry` names, as (kind, name): its search, its case, the galleries and the users it is
    about (the actor is shown on its own) — each once, in that order."""
    named = []
    if entry.get("search_id"):
        named.append(("search", entry["search_id"]))
    if entry.get("case_number"):
        named.append(("case", entry["case_number"]))
    objects = entry.get("objects") or {}
    for kind, keys in (("gallery", GALLERY_KEYS), ("user", USER_KEYS)):
        for key in keys:
            value = objects.get(key)
            if isinstance(value, str) and value and (kind, value) not in named:
                named.append((kind, value))
    return named
