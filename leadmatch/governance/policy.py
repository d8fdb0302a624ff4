"""Deployment policy: what this deployment allows, set by an admin (audited), shown on `whoami` and the home page.

    video_probes     searching a video clip, adding clips to a case, and searching a person seen in one
    case_media       adding photos and clips to a case, grouping them into persons and searching a person
    min_candidates   the smallest candidate list a search may ask for (within 2–50)
    max_candidates   the largest (within 2–50)
    required_course  the certification course an agent must hold to search
    enhanced_probes  searching a probe marked `enhanced` (edited before search; always with its original)

A refused action names the policy that refused it (`policy-…` reasons), so the audit trail says which switch
stopped it. Kept in the `settings` table; the course under its own key, as accounts reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from leadmatch.errors import InputError
from leadmatch.record import audit
from leadmatch.governance.accounts import DEFAULT_COURSE, Actor, refuse, require, required_course
from leadmatch.record.store import transaction
from leadmatch.record.workspace import Workspace

KEY = "policy"
#: The candidate list sizes any policy stays within: POLICY.md's 2 to 50 (search.leads holds the same bounds;
#: governance sits beneath search, so they are written here again and a test keeps the two equal).
MIN_CANDIDATES, MAX_CANDIDATES = 2, 50
SWITCHES = ("video_probes", "case_media", "enhanced_probes")


@dataclass
class Policy:
    """The deployment's policy, every field with its default (everything allowed, 2–50 candidates)."""

    video_probes: bool = True
    case_media: bool = True
    enhanced_probes: bool = True
    min_candidates: int = MIN_CANDIDATES
    max_candidates: int = MAX_CANDIDATES
    required_course: str = DEFAULT_COURSE

    def lines(self) -> list[str]:
        """The policy as short lines for `whoami` and the home page."""
        on = {True: "on", False: "off"}
        return [f"video probes {on[self.video_probes]}", f"case media {on[self.case_media]}",
                f"enhanced probes {on[self.enhanced_probes]}",
                f"candidate list {self.min_candidates}–{self.max_candidates}",
                f'required course "{self.required_course}"']


def get(ws: Workspace) -> Policy:
    """The policy in force (defaults for whatever was never set)."""
    row = ws.conn.execute("SELECT value FROM settings WHERE key = ?", (KEY,)).fetchone()
    stored = json.loads(row[0]) if row else {}
    fields = {k: v for k, v in stored.items() if k in Policy.__dataclass_fields__ and k != "required_course"}
    return Policy(**fields, required_course=required_course(ws))


def show(ws: Workspace, actor: Actor) -> dict:
    """Any signed-in user: the policy as data, with its lines."""
    require(ws, actor, ("admin", "analyst", "agent", "reviewer", "auditor"), "policy.read")
    current = get(ws)
    return {**asdict(current), "lines": current.lines()}


def update(ws: Workspace, actor: Actor, changes: dict) -> dict:
    """Admin: change some fields of the policy (audited with before and after). Unknown fields, switches that
    are not true/false and candidate limits outside 2–50 (or min above max) are bad input."""
    require(ws, actor, "admin", "policy.set", objects={"changes": changes})
    before = get(ws)
    after = Policy(**{**asdict(before), **_checked(changes)})
    if not MIN_CANDIDATES <= after.min_candidates <= after.max_candidates <= MAX_CANDIDATES:
        raise InputError(f"candidate list {after.min_candidates}–{after.max_candidates} is not allowed",
                         f"keep {MIN_CANDIDATES} ≤ min ≤ max ≤ {MAX_CANDIDATES}")
    if not after.required_course.strip():
        raise InputError("the required course name is empty", f'name the course, e.g. "{DEFAULT_COURSE}"')
    stored = {k: v for k, v in asdict(after).items() if k != "required_course"}
    with transaction(ws.conn):
        ws.conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                        "value = excluded.value", (KEY, json.dumps(stored)))
        ws.conn.execute("INSERT INTO settings (key, value) VALUES ('required_course', ?) ON CONFLICT (key) DO "
                        "UPDATE SET value = excluded.value", (after.required_course.strip(),))
        audit.record(ws.conn, actor.name, "policy.set", objects={"before": asdict(before), "after": asdict(after)})
    return {**asdict(after), "lines": after.lines()}


def _checked(changes: dict) -> dict:
    out = {}
    for key, value in changes.items():
        if key not in Policy.__dataclass_fields__:
            raise InputError(f"{key!r} is not a policy setting", f"use one of: {', '.join(Policy.__dataclass_fields__)}")
        if key in SWITCHES and not isinstance(value, bool):
            raise InputError(f"{key} must be on or off", "give true/false (on/off)")
        if key in ("min_candidates", "max_candidates") and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(f"{key} must be a whole number", f"give {MIN_CANDIDATES} to {MAX_CANDIDATES}")
        if key == "required_course" and not isinstance(value, str):
            raise InputError("required_course must be text", "give the course name")
        out[key] = value
    return out


def refused(ws: Workspace, actor: Actor, action: str, setting: str, message: str, **context):
    """The audited refusal of an action this policy switches off or limits, naming the policy."""
    return refuse(ws, actor, action, f"policy-{setting.replace('_', '-')}", f"deployment policy: {message}",
                  "ask an admin; the policy is shown by `leadmatch whoami` and `leadmatch policy show`", **context)


def search_shortfall(ws: Workspace, *, video: bool, top_k: int, probe_source: str) -> tuple[str, str] | None:
    """What in a search the policy forbids, as (setting, message), or None. The caller raises and audits it."""
    current = get(ws)
    if video and not current.video_probes:
        return "video_probes", "video probes are switched off in this deployment"
    if not current.min_candidates <= top_k <= current.max_candidates:
        return "candidates", (f"a candidate list of {top_k} is outside the allowed "
                              f"{current.min_candidates}–{current.max_candidates}")
    if probe_source == "enhanced" and not current.enhanced_probes:
        return "enhanced_probes", "enhanced probes are not allowed in this deployment"
    return None
