"""Supervision: the audit trail for auditors and admins — verify the chain, read the log, run the report.
Reading the trail is itself audited."""

from __future__ import annotations

from . import audit
from .accounts import Actor, require
from .errors import InputError
from .gallery import parse_date
from .workspace import Workspace

OVERSEERS = ("auditor", "admin")


def verify(ws: Workspace, actor: Actor, expect_head: str | None = None) -> audit.Verification:
    require(ws, actor, OVERSEERS, "audit.verify")
    result = audit.verify(ws.conn, expect_head)
    audit.record(ws.conn, actor.name, "audit.verify", "ok" if result.ok else "failed",
                 objects={"entries": result.entries, "head": result.head, "bad_entry": result.bad_entry})
    return result


def log(ws: Workspace, actor: Actor, case: str | None = None, user: str | None = None, since: str | None = None,
        limit: int | None = None) -> list[dict]:
    require(ws, actor, OVERSEERS, "audit.log")
    since = parse_date(since, "--since") if since else None
    rows = audit.entries(ws.conn, case=case, actor=user, since=since, limit=limit)
    audit.record(ws.conn, actor.name, "audit.log", objects={"case": case, "user": user, "since": since})
    return rows


def report(ws: Workspace, actor: Actor, start: str, end: str, stale_days: int = 30) -> dict:
    require(ws, actor, OVERSEERS, "audit.report")
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    if last < first:
        raise InputError(f"--to {last} is before --from {first}", "swap them")
    if stale_days < 1:
        raise InputError("--stale-days must be at least 1", "give a number of days")
    # --to is inclusive for people; the query takes the day after as an open bound
    from datetime import date, timedelta

    end_bound = (date.fromisoformat(last) + timedelta(days=1)).isoformat()
    data = audit.report(ws.conn, first, end_bound, stale_days)
    data["to"] = last
    audit.record(ws.conn, actor.name, "audit.report", objects={"from": first, "to": last})
    return data
