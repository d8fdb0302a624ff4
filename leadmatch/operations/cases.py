"""Case work beyond one probe: case media grouped into persons (merge, split, drop, undo, search a person), the
disclosure export, and the deployment policy (issue 22). The rules live in `leadmatch.casemedia` and
`leadmatch.governance.policy`; these are the calls every front end makes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from leadmatch.casemedia import cases, export, media, persons
from leadmatch.governance import policy
from leadmatch.governance.accounts import Actor
from leadmatch.record.workspace import Workspace


def overview(ws: Workspace, actor: Actor, case: str) -> dict:
    """A case at a glance: its searches with their progress and next step, leads, people, media (audited)."""
    return cases.overview(ws, actor, case)


def add_media(ws: Workspace, actor: Actor, request: media.MediaRequest,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """Agent: photos and clips added to a case (by hash), their faces found and grouped into persons (audited)."""
    return media.add(ws, actor, request, progress=progress)


def list_media(ws: Workspace, actor: Actor, case: str) -> list[dict]:
    return media.listing(ws, actor, case)


def list_persons(ws: Workspace, actor: Actor, case: str, include_dropped: bool = False) -> dict:
    return persons.listing(ws, actor, case, include_dropped)


def show_person(ws: Workspace, actor: Actor, case: str, label: str) -> dict:
    return persons.show(ws, actor, case, label)


def person_face(ws: Workspace, actor: Actor, case: str, face_id: int) -> bytes:
    """One appearance's face, as a PNG."""
    return persons.face_image(ws, actor, case, face_id)


def merge(ws: Workspace, actor: Actor, case: str, labels: list[str], reason: str) -> dict:
    return persons.merge(ws, actor, case, labels, reason)


def split(ws: Workspace, actor: Actor, case: str, label: str, faces: list[int], reason: str) -> dict:
    return persons.split(ws, actor, case, label, faces, reason)


def drop(ws: Workspace, actor: Actor, case: str, label: str, reason: str) -> dict:
    return persons.drop(ws, actor, case, label, reason)


def undo(ws: Workspace, actor: Actor, case: str, reason: str) -> dict:
    return persons.undo(ws, actor, case, reason)


def search_person(ws: Workspace, actor: Actor, case: str, label: str, request) -> dict:
    """Agent: a person's best faces searched as one multi-still probe; a normal search from there on."""
    return persons.search(ws, actor, case, label, request)


def export_case(ws: Workspace, actor: Actor, case: str, out: Path) -> dict:
    """Auditor, reviewer or admin: the case's disclosure export (HTML + JSON, every file hashed; audited)."""
    return export.export(ws, actor, case, out)


def show_policy(ws: Workspace, actor: Actor) -> dict:
    return policy.show(ws, actor)


def set_policy(ws: Workspace, actor: Actor, changes: dict) -> dict:
    """Admin: change the deployment policy (audited)."""
    return policy.update(ws, actor, changes)
