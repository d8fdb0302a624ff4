"""Accounts (admin): add, grant and revoke roles, certify, disable, list; and the authorized purposes a search
may name."""

from __future__ import annotations

from leadmatch.governance import accounts, purposes
from leadmatch.governance.accounts import Actor
from leadmatch.record.workspace import Workspace


def list_users(ws: Workspace, actor: Actor) -> list[dict]:
    return accounts.list_users(ws, actor)


def add_user(ws: Workspace, actor: Actor, name: str, roles: list[str], password: str) -> dict:
    added = accounts.add_user(ws, actor, name, roles, password)
    return {"user": added.name, "roles": sorted(added.roles)}


def certify(ws: Workspace, actor: Actor, name: str, course: str, completed: str, expires: str | None) -> dict:
    return accounts.certify(ws, actor, name, course, completed, expires)


def disable(ws: Workspace, actor: Actor, name: str) -> dict:
    accounts.disable(ws, actor, name)
    return {"user": name}


def grant_role(ws: Workspace, actor: Actor, name: str, role: str) -> dict:
    """Admin: give an account another role (audited); answers its roles now."""
    return accounts.grant_role(ws, actor, name, role)


def revoke_role(ws: Workspace, actor: Actor, name: str, role: str) -> dict:
    """Admin: take a role from an account (audited; never its last role, nor an admin's own admin role)."""
    return accounts.revoke_role(ws, actor, name, role)


def list_purposes(ws: Workspace) -> list[str]:
    """The authorized purposes (readable by any signed-in user; in direct mode by anyone at the keyboard)."""
    return purposes.list_all(ws)


def add_purpose(ws: Workspace, actor: Actor, name: str) -> dict:
    """Admin: authorize a new search purpose; answers its name as stored."""
    return {"purpose": purposes.add(ws, actor, name)}


def retired_purposes(ws: Workspace) -> list[dict]:
    """The retired purposes, with when and by whom (readable like the list)."""
    return purposes.retired(ws)


def retire_purpose(ws: Workspace, actor: Actor, name: str) -> dict:
    """Admin: retire a search purpose (no new search may name it; audited); answers it with when and by whom."""
    return purposes.retire(ws, actor, name)
