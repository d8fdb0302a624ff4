"""After the search: dispositions, corroboration and closure, as a state machine per search.

    awaiting-disposition → awaiting-review → closed-identified | closed-no-identification

The searching agent dispositions every candidate; a reviewer who did not run the search records independent
evidence; a search closes as identified only on a candidate with corroborating (and no refuting) evidence.
Every attempt to skip a step is refused and audited. Closed searches are read-only.
"""

from __future__ import annotations

from leadmatch import safetext
from leadmatch.safetext import plural
from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, refuse, require
from leadmatch.errors import InputError, NotFound, Refused
from leadmatch.record.store import transition, utc_now
from leadmatch.record.workspace import Workspace

AWAITING_DISPOSITION = "awaiting-disposition"
AWAITING_REVIEW = "awaiting-review"
CLOSED_IDENTIFIED = "closed-identified"
CLOSED_NO_IDENTIFICATION = "closed-no-identification"
STATUSES = (AWAITING_DISPOSITION, AWAITING_REVIEW, CLOSED_IDENTIFIED, CLOSED_NO_IDENTIFICATION)
DECISIONS = ("possible-lead", "excluded")
EVIDENCE_TYPES = ("documents", "fingerprints", "records-check", "witness", "other")
OUTCOMES = ("corroborated", "refuted")
MIN_NOTE = 5


def _search(ws: Workspace, search_id: str):
    row = ws.conn.execute("SELECT * FROM searches WHERE id = ?", (search_id,)).fetchone()
    if row is None:
        raise NotFound(f"no search {search_id!r}", "see `leadmatch searches`")
    return row


def _candidate(ws: Workspace, actor: Actor, action: str, search, rank: int):
    row = ws.conn.execute("SELECT * FROM candidates WHERE search_id = ? AND rank = ?", (search["id"], rank)).fetchone()
    if row is None:
        count = ws.conn.execute("SELECT count(*) FROM candidates WHERE search_id = ?", (search["id"],)).fetchone()[0]
        raise refuse(ws, actor, action, "no-such-candidate", f"search {search['id']} has no candidate at rank {rank}",
                     f"pick a rank from 1 to {count}", case=search["case_number"], search_id=search["id"])
    return row


def _not_closed(ws: Workspace, actor: Actor, action: str, search) -> None:
    if search["status"].startswith("closed"):
        raise refuse(ws, actor, action, "closed", f"search {search['id']} is {search['status']} and read-only",
                     "open a new search if the case needs one", case=search["case_number"], search_id=search["id"])


def _text(ws, actor, action, search, value: str, option: str) -> str:
    value = (value or "").strip()
    if safetext.unsafe_char(value, free_text=True) is not None:
        raise refuse(ws, actor, action, "unsafe-text", f"{option} holds a control or text-direction character",
                     "type it again without control characters", case=search["case_number"], search_id=search["id"])
    if len(value) < MIN_NOTE:
        raise refuse(ws, actor, action, f"missing-{option.strip('-')}", f"{option} is empty or too short",
                     f"write at least {MIN_NOTE} characters", case=search["case_number"], search_id=search["id"])
    return value


def disposition(ws: Workspace, actor: Actor, search_id: str, rank: int, decision: str, note: str) -> dict:
    """The searching agent's decision on one candidate. When every candidate has one, review opens."""
    action = "disposition"
    with transition(ws.conn, Refused):  # the checks and the write as one: a parallel call sees this one's result
        return _disposition(ws, actor, action, _search(ws, search_id), rank, decision, note)


def _disposition(ws: Workspace, actor: Actor, action: str, search, rank: int, decision: str, note: str) -> dict:
    """`disposition` inside its transaction: `search` was read there."""
    search_id = search["id"]
    context = {"case": search["case_number"], "search_id": search_id, "objects": {"rank": rank}}
    require(ws, actor, "agent", action, **context)
    _not_closed(ws, actor, action, search)
    if search["agent"] != actor.name:
        raise refuse(ws, actor, action, "not-searching-agent",
                     f"only {search['agent']}, who ran search {search_id}, may disposition its candidates",
                     "ask that agent", **context)
    if not (decision or "").strip():  # nothing is preselected: the agent must choose, never a default
        raise refuse(ws, actor, action, "missing-decision", f"no decision was chosen for rank {rank}",
                     f"choose {' or '.join(DECISIONS)} after comparing the faces", **context)
    if decision not in DECISIONS:
        raise InputError(f"--decision {decision!r} is not allowed", f"use {' or '.join(DECISIONS)}")
    _candidate(ws, actor, action, search, rank)
    note = _text(ws, actor, action, search, note, "--note")
    if ws.conn.execute("SELECT 1 FROM dispositions WHERE search_id = ? AND rank = ?", (search_id, rank)).fetchone():
        raise refuse(ws, actor, action, "already-dispositioned",
                     f"rank {rank} of search {search_id} already has a disposition",
                     "dispositions are final; explain a correction in the closure note", **context)
    ws.conn.execute("INSERT INTO dispositions (search_id, rank, decision, note, decided_by, decided_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (search_id, rank, decision, note, actor.name, utc_now()))
    remaining = ws.conn.execute(
        "SELECT count(*) FROM candidates c LEFT JOIN dispositions d ON d.search_id = c.search_id AND d.rank = c.rank "
        "WHERE c.search_id = ? AND d.rank IS NULL", (search_id,)).fetchone()[0]
    status = AWAITING_REVIEW if remaining == 0 else AWAITING_DISPOSITION
    ws.conn.execute("UPDATE searches SET status = ? WHERE id = ?", (status, search_id))
    audit.record(ws.conn, actor.name, action, case=search["case_number"], search_id=search_id,
                 objects={"rank": rank, "decision": decision, "status": status})
    return {"search_id": search_id, "rank": rank, "decision": decision, "status": status, "remaining": remaining}


def corroborate(ws: Workspace, actor: Actor, search_id: str, rank: int, evidence_type: str, evidence: str,
                reference: str, outcome: str) -> dict:
    """A reviewer, never the searching agent, records independent evidence on a possible lead."""
    action = "corroborate"
    with transition(ws.conn, Refused):  # the checks and the write as one
        return _corroborate(ws, actor, action, _search(ws, search_id), rank, evidence_type, evidence, reference,
                            outcome)


def _corroborate(ws: Workspace, actor: Actor, action: str, search, rank: int, evidence_type: str, evidence: str,
                 reference: str, outcome: str) -> dict:
    """`corroborate` inside its transaction: `search` was read there."""
    search_id = search["id"]
    context = {"case": search["case_number"], "search_id": search_id, "objects": {"rank": rank}}
    require(ws, actor, "reviewer", action, **context)
    _not_closed(ws, actor, action, search)
    if search["agent"] == actor.name:
        raise refuse(ws, actor, action, "separation-of-duties",
                     f"{actor.name} ran search {search_id} and cannot corroborate its candidates",
                     "another reviewer must record the evidence", **context)
    if search["status"] != AWAITING_REVIEW:
        raise refuse(ws, actor, action, "not-dispositioned", f"search {search_id} is {search['status']}",
                     "the agent must disposition every candidate first", **context)
    _candidate(ws, actor, action, search, rank)
    decided = ws.conn.execute("SELECT decision FROM dispositions WHERE search_id = ? AND rank = ?",
                              (search_id, rank)).fetchone()
    if decided is None or decided[0] != "possible-lead":
        raise refuse(ws, actor, action, "not-a-possible-lead", f"rank {rank} was {decided[0] if decided else 'not dispositioned'}",
                     "corroboration is recorded only for possible leads", **context)
    # nothing is preselected: an empty final choice is a refused attempt, audited, never a default
    if not (evidence_type or "").strip():
        raise refuse(ws, actor, action, "missing-evidence-type", f"no --evidence-type was chosen for rank {rank}",
                     f"choose one of: {', '.join(EVIDENCE_TYPES)}", **context)
    if not (outcome or "").strip():
        raise refuse(ws, actor, action, "missing-outcome", f"no --outcome was chosen for rank {rank}",
                     f"choose {' or '.join(OUTCOMES)}", **context)
    if evidence_type not in EVIDENCE_TYPES:
        raise InputError(f"--evidence-type {evidence_type!r} is not allowed", f"use one of: {', '.join(EVIDENCE_TYPES)}")
    if outcome not in OUTCOMES:
        raise InputError(f"--outcome {outcome!r} is not allowed", f"use {' or '.join(OUTCOMES)}")
    evidence = _text(ws, actor, action, search, evidence, "--evidence")
    reference = (reference or "").strip()
    if not safetext.is_safe_name(reference):
        raise refuse(ws, actor, action, "unsafe-text", "--reference holds a control or text-direction character",
                     "type it again without control characters", **context)
    if not reference:
        raise refuse(ws, actor, action, "missing-reference", "--reference is empty",
                     "cite the record, report or exhibit the evidence comes from", **context)
    ws.conn.execute("INSERT INTO corroborations (search_id, rank, evidence_type, evidence, reference, outcome, "
                    "recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (search_id, rank, evidence_type, evidence, reference, outcome, actor.name, utc_now()))
    audit.record(ws.conn, actor.name, action, case=search["case_number"], search_id=search_id,
                 objects={"rank": rank, "evidence_type": evidence_type, "outcome": outcome, "reference": reference})
    return {"search_id": search_id, "rank": rank, "evidence_type": evidence_type, "outcome": outcome}


def close(ws: Workspace, actor: Actor, search_id: str, outcome: str, note: str, rank: int | None = None) -> dict:
    """A reviewer closes the search: `identified` (on a corroborated rank) or `no-identification`."""
    action = "close"
    with transition(ws.conn, Refused):  # the status check and the closure as one: a search closes once
        return _close(ws, actor, action, _search(ws, search_id), outcome, note, rank)


def _close(ws: Workspace, actor: Actor, action: str, search, outcome: str, note: str, rank: int | None) -> dict:
    """`close` inside its transaction: `search` was read there."""
    search_id = search["id"]
    context = {"case": search["case_number"], "search_id": search_id, "objects": {"outcome": outcome, "rank": rank}}
    require(ws, actor, "reviewer", action, **context)
    _not_closed(ws, actor, action, search)
    if search["agent"] == actor.name:
        raise refuse(ws, actor, action, "separation-of-duties", f"{actor.name} ran search {search_id} and cannot close it",
                     "another reviewer must close it", **context)
    if search["status"] != AWAITING_REVIEW:
        raise refuse(ws, actor, action, "not-dispositioned", f"search {search_id} is {search['status']}",
                     "the agent must disposition every candidate first", **context)
    if not (outcome or "").strip():  # nothing is preselected: refused and audited, never a default
        raise refuse(ws, actor, action, "missing-outcome", f"no --outcome was chosen for search {search_id}",
                     "choose identified or no-identification", **context)
    note = _text(ws, actor, action, search, note, "--note")
    if outcome == "identified":
        if rank is None:
            raise InputError("--outcome identified needs --rank", "name the corroborated candidate's rank")
        _candidate(ws, actor, action, search, rank)
        found = {r[0] for r in ws.conn.execute("SELECT outcome FROM corroborations WHERE search_id = ? AND rank = ?",
                                               (search_id, rank))}
        if "corroborated" not in found:
            raise refuse(ws, actor, action, "uncorroborated",
                         f"rank {rank} of search {search_id} has no corroborating evidence recorded",
                         "record it with `leadmatch corroborate`, or close as no-identification", **context)
        if "refuted" in found:
            raise refuse(ws, actor, action, "refuted", f"evidence recorded for rank {rank} refutes the lead",
                         "close as no-identification, explaining the conflict", **context)
        status = CLOSED_IDENTIFIED
    elif outcome == "no-identification":
        if rank is not None:
            raise InputError("--rank is only for --outcome identified", "leave it out")
        status = CLOSED_NO_IDENTIFICATION
    else:
        raise InputError(f"--outcome {outcome!r} is not allowed", "use identified or no-identification")
    now = utc_now()
    ws.conn.execute("UPDATE searches SET status = ?, closed_at = ?, closed_by = ?, closure_rank = ?, "
                    "closure_note = ? WHERE id = ?", (status, now, actor.name, rank, note, search_id))
    audit.record(ws.conn, actor.name, action, case=search["case_number"], search_id=search_id,
                 objects={"status": status, "rank": rank})
    return {"search_id": search_id, "status": status, "rank": rank, "closed_at": now}


def can_read(ws: Workspace, actor: Actor, search) -> None:
    """Agents see their own searches; reviewers, auditors and admins see all."""
    held = require(ws, actor, ("agent", "reviewer", "auditor", "admin"), "search.read",
                   case=search["case_number"], search_id=search["id"]).roles
    if not held.intersection({"reviewer", "auditor", "admin"}) and search["agent"] != actor.name:
        raise refuse(ws, actor, "search.read", "need-to-know", f"search {search['id']} belongs to another agent",
                     "ask a reviewer or auditor", case=search["case_number"], search_id=search["id"])


def may(actor: Actor, search: dict) -> dict:
    """What `actor` may do on a search (as `show` gives it): `disposition` its candidates (the agent who ran it)
    and `review` it (corroborate and close: a reviewer who did not run it). The gates still check each action."""
    own = search["agent"] == actor.name
    return {"disposition": own and actor.has("agent"), "review": actor.has("reviewer") and not own}


def listing(ws: Workspace, actor: Actor, case: str | None = None, status: str | None = None,
            oldest_first: bool = False) -> list[dict]:
    """Searches the actor may see, newest first (or oldest first: a queue), each with its progress (candidates,
    dispositioned, leads, corroborated) and `next`: who acts next and what they do (`next_step`)."""
    held = require(ws, actor, ("agent", "reviewer", "auditor", "admin"), "search.list").roles
    if status and status not in STATUSES:
        raise InputError(f"--status {status!r} is not a status", f"use one of: {', '.join(STATUSES)}")
    clauses, params = [], []
    if case:
        clauses.append("s.case_number = ?")
        params.append(case)
    if status:
        clauses.append("s.status = ?")
        params.append(status)
    if not held.intersection({"reviewer", "auditor", "admin"}):
        clauses.append("s.agent = ?")
        params.append(actor.name)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "ASC" if oldest_first else "DESC"
    rows = [dict(r) for r in ws.conn.execute(
        "SELECT s.id AS search_id, s.case_number AS 'case', g.name AS gallery, s.agent, s.created_at, s.status, "
        "s.purpose, s.closed_by, s.closure_rank, "
        "(SELECT count(*) FROM candidates c WHERE c.search_id = s.id) AS candidates, "
        "(SELECT count(*) FROM dispositions d WHERE d.search_id = s.id) AS dispositioned, "
        "(SELECT count(*) FROM dispositions d WHERE d.search_id = s.id AND d.decision = 'possible-lead') AS leads, "
        "(SELECT count(DISTINCT k.rank) FROM corroborations k WHERE k.search_id = s.id "
        " AND k.outcome = 'corroborated') AS corroborated "
        f"FROM searches s JOIN galleries g ON g.id = s.gallery_id {where} ORDER BY s.created_at {order}", params)]
    for row in rows:
        row["next"] = next_step(row)
    return rows


def next_step(row: dict) -> dict:
    """Who acts next on a search and what they do, from its listing row (status, agent, candidates,
    dispositioned, leads, corroborated, closed_by, closure_rank): {"role", "who", "text"}; role None once closed.
    Every front end shows this sentence, so none re-derives the workflow."""
    agent, total, done = row["agent"], row["candidates"], row["dispositioned"]
    leads = row.get("leads", 0)
    if row["status"] == AWAITING_DISPOSITION:
        return {"role": "agent", "who": agent,
                "text": f"{agent} (the searching agent) dispositions the remaining {plural(total - done, 'candidate')}"
                        f" ({done} of {total} done)"}
    if row["status"] == AWAITING_REVIEW:
        if leads and not row.get("corroborated"):
            work = f"records independent corroboration for the {plural(leads, 'possible lead')}, then closes it"
        elif leads:
            work = "closes it (identified only on a corroborated lead)"
        else:
            work = "closes it as no-identification (no candidate was a possible lead)"
        return {"role": "reviewer", "who": None, "text": f"a reviewer other than {agent} {work}"}
    outcome = (f"identified on rank {row['closure_rank']}" if row["status"] == CLOSED_IDENTIFIED
               else "no identification")
    return {"role": None, "who": None, "text": f"closed by {row.get('closed_by') or 'a reviewer'}: {outcome}"}


def progress(record: dict) -> dict:
    """A shown search's progress — candidates, dispositioned, leads, corroborated — and `next` (`next_step`)."""
    cands = record["candidates"]
    row = {"status": record["status"], "agent": record["agent"], "candidates": len(cands),
           "dispositioned": sum(1 for c in cands if c.get("disposition")),
           "leads": sum(1 for c in cands if (c.get("disposition") or {}).get("decision") == "possible-lead"),
           "corroborated": sum(1 for c in cands if any(e["outcome"] == "corroborated"
                                                       for e in c.get("corroboration") or [])),
           "closed_by": (record.get("closure") or {}).get("closed_by"),
           "closure_rank": (record.get("closure") or {}).get("rank")}
    return {k: row[k] for k in ("candidates", "dispositioned", "leads", "corroborated")} | {"next": next_step(row)}


def seen_before(ws: Workspace, search_id: str) -> dict[str, list[dict]]:
    """Per candidate subject of a search: the decisions made on that subject (same gallery) in earlier searches
    of the same case — decision, who, when, note, which search. Shown beside the candidate; nothing is hidden or
    pre-filled: the candidate must still be dispositioned."""
    search = _search(ws, search_id)
    out: dict[str, list[dict]] = {}
    for r in ws.conn.execute(
            "SELECT c.subject, d.decision, d.note, d.decided_by, d.decided_at, s.id AS search_id, c.rank "
            "FROM searches s JOIN candidates c ON c.search_id = s.id JOIN dispositions d ON d.search_id = s.id "
            "AND d.rank = c.rank WHERE s.case_number = ? AND s.gallery_id = ? AND s.id != ? AND s.created_at < ? "
            "AND c.subject IN (SELECT subject FROM candidates WHERE search_id = ?) ORDER BY d.decided_at",
            (search["case_number"], search["gallery_id"], search_id, search["created_at"], search_id)):
        out.setdefault(r["subject"], []).append({k: r[k] for k in ("decision", "note", "decided_by", "decided_at",
                                                                   "search_id", "rank")})
    return out


def workflow(ws: Workspace, search_id: str) -> dict:
    """Dispositions, corroborations, closure and the audit history of one search."""
    search = _search(ws, search_id)
    return {
        "status": search["status"],
        "dispositions": {r["rank"]: dict(r) for r in ws.conn.execute(
            "SELECT rank, decision, note, decided_by, decided_at FROM dispositions WHERE search_id = ?", (search_id,))},
        "corroborations": [dict(r) for r in ws.conn.execute(
            "SELECT rank, evidence_type, evidence, reference, outcome, recorded_by, recorded_at FROM corroborations "
            "WHERE search_id = ? ORDER BY id", (search_id,))],
        "closure": None if not search["closed_at"] else {
            "status": search["status"], "rank": search["closure_rank"], "note": search["closure_note"],
            "closed_by": search["closed_by"], "closed_at": search["closed_at"]},
        "history": [{k: e[k] for k in ("at", "actor", "action", "outcome", "reason")} | {"objects": e["objects"]}
                    for e in audit.entries(ws.conn, search_id=search_id)],
    }


