"""Signing in and out, who is signed in, and the rules of behavior."""

from __future__ import annotations

from leadmatch.governance import accounts, policy
from leadmatch.governance.accounts import Actor
from leadmatch.record.workspace import Workspace


def login(ws: Workspace, name: str, password: str, hours: int = accounts.SESSION_HOURS, *,
          throttle: accounts.SignInThrottle | None = None, address: str | None = None,
          peer: str | None = None) -> dict:
    """Password → a session token (only its sha256 is stored) with the user, roles and expiry; `address` is the
    client's (as the service believes it) and `peer` the connection's, both audited."""
    token, actor, expires = accounts.login(ws, name, password, hours, throttle=throttle, address=address, peer=peer)
    return {"token": token, "user": actor.name, "roles": sorted(actor.roles), "expires": expires}


def logout(ws: Workspace, token: str | None) -> dict:
    """End the session of `token`; answers whose it was (None when there was none)."""
    return {"user": accounts.logout(ws, token) if token else None}


def whoami(ws: Workspace, actor: Actor) -> dict:
    """The signed-in user: roles, current certification, when the rules of behavior were accepted, and the
    deployment policy in force (one line a setting)."""
    return {"user": actor.name, "roles": sorted(actor.roles),
            "certification": accounts.current_certification(ws, actor.name),
            "rules_accepted": accounts.get_user(ws, actor.name)["rules_accepted_at"],
            "policy": policy.get(ws).lines()}


def accept_rules(ws: Workspace, actor: Actor) -> dict:
    """Record that `actor` accepted the rules of behavior (needed once before searching)."""
    return {"user": actor.name, "at": accounts.accept_rules(ws, actor)}


def rules() -> dict:
    """The text of the rules of behavior."""
    return {"rules": accounts.RULES_OF_BEHAVIOR}
