"""What every part of case media shares: the case's embedding model and who may read a case's media; and one
case at a glance (`overview`).

Kept apart from media.py and persons.py so that each imports it and neither imports the other's internals.
"""

from __future__ import annotations

from leadmatch.errors import NotFound
from leadmatch.governance import casework
from leadmatch.governance.accounts import Actor, refuse, require
from leadmatch.record import audit
from leadmatch.record.workspace import Workspace

#: The embedding model of every case today: dlib's ResNet (run on ONNX Runtime or dlib, same numbers). The one
#: place a case's model is chosen: a per-gallery model (another branch) plugs in here.
DEFAULT_MODEL = "dlib-resnet-v1"


def case_model(ws: Workspace, case: str) -> str:
    """The embedding model the case's faces are compared with (the one place it is chosen)."""
    return DEFAULT_MODEL


def may_read(ws: Workspace, actor: Actor, case: str, action: str) -> Actor:
    """Reviewers, auditors and admins read every case's media; an agent only a case they added media to or
    searched in (need to know). Refusals audited."""
    held = require(ws, actor, ("agent", "reviewer", "auditor", "admin"), action, case=case).roles
    if held.intersection({"reviewer", "auditor", "admin"}):
        return actor
    if not ws.conn.execute("SELECT 1 FROM case_media WHERE case_number = ? AND added_by = ? UNION ALL "
                           "SELECT 1 FROM searches WHERE case_number = ? AND agent = ? LIMIT 1",
                           (case, actor.name, case, actor.name)).fetchone():
        raise refuse(ws, actor, action, "need-to-know", f"{actor.name} has not worked on case {case}",
                     "ask an agent on the case or a reviewer", case=case)
    return actor


def overview(ws: Workspace, actor: Actor, case: str) -> dict:
    """One case at a glance (audited read, need to know as for its media): every search of the case the actor may
    see with its progress and next step, the possible leads with their corroboration and closure, the people who
    worked on it, its media and persons counted, and the next actions. An agent sees their own searches only."""
    case = (case or "").strip()
    may_read(ws, actor, case, "case.read")
    found = ws.conn.execute("SELECT (SELECT count(*) FROM searches WHERE case_number = ?) + "
                            "(SELECT count(*) FROM case_media WHERE case_number = ?)", (case, case)).fetchone()[0]
    if not found:
        raise NotFound(f"no case {case!r}: no search or media names it", "check the case number")
    searches = casework.listing(ws, actor, case, None)
    shown = [s["search_id"] for s in searches]
    marks = ",".join("?" * len(shown))
    leads = [] if not shown else [dict(r) for r in ws.conn.execute(
        "SELECT d.search_id, d.rank, c.subject, d.decided_by, d.decided_at, d.note, "
        "(SELECT group_concat(k.outcome || ' (' || k.evidence_type || ', ' || k.recorded_by || ')', '; ') "
        " FROM corroborations k WHERE k.search_id = d.search_id AND k.rank = d.rank) AS corroboration "
        "FROM dispositions d JOIN candidates c ON c.search_id = d.search_id AND c.rank = d.rank "
        f"WHERE d.decision = 'possible-lead' AND d.search_id IN ({marks}) ORDER BY d.decided_at", shown)]
    people: dict[str, set[str]] = {}
    for s in searches:
        people.setdefault(s["agent"], set()).add("searched")
        if s["closed_by"]:
            people.setdefault(s["closed_by"], set()).add("closed")
    for r in ([] if not shown else ws.conn.execute(
            f"SELECT DISTINCT recorded_by FROM corroborations WHERE search_id IN ({marks})", shown)):
        people.setdefault(r[0], set()).add("corroborated")
    for r in ws.conn.execute("SELECT DISTINCT added_by FROM case_media WHERE case_number = ?", (case,)):
        people.setdefault(r[0], set()).add("added media")
    media_count = ws.conn.execute("SELECT count(*) FROM case_media WHERE case_number = ?", (case,)).fetchone()[0]
    persons = ws.conn.execute("SELECT count(*) FROM case_persons WHERE case_number = ? AND dropped_at IS NULL",
                              (case,)).fetchone()[0]
    audit.record(ws.conn, actor.name, "case.read", case=case, objects={"searches": len(searches)})
    return {"case": case, "searches": searches, "leads": leads,
            "people": [{"user": u, "did": sorted(d)} for u, d in sorted(people.items())],
            "media": media_count, "persons": persons,
            "next": [{"search_id": s["search_id"], **s["next"]} for s in searches if s["next"]["role"]]}
