"""Designated users: accounts with roles, argon2id passwords, sessions, certification, rules of behavior.

`require` is the one gate every action passes: it re-reads the user (so a disable takes effect at once),
checks the role, and audits a refusal before raising it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone


from leadmatch import safetext
from leadmatch.lazy import lazy
from leadmatch.record import audit
from leadmatch.governance.signin import SignInThrottle
from leadmatch.errors import InputError, NotFound, Refused
from leadmatch.record.store import transaction, transition, utc_now
from leadmatch.record.workspace import Workspace

ROLES = ("admin", "analyst", "agent", "reviewer", "auditor")
DEFAULT_COURSE = "Use of Facial Recognition Services"
SESSION_HOURS = 8
MIN_PASSWORD = 12
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

RULES_OF_BEHAVIOR = """\
Rules of behavior for leadmatch users

1. Face search results are INVESTIGATIVE LEADS ONLY — never a positive identification. No one may be
   arrested, charged or otherwise acted against on a leadmatch result alone.
2. Search only for an authorized purpose, in a named case, after traditional investigative means were tried.
3. Never submit composite images, sketches or artist renderings; mark edited or enhanced probes as such.
4. Compare every candidate and record a disposition for each. A second person must record independent
   corroborating evidence before any search closes as an identification.
5. Respect privacy, civil rights and civil liberties: no search based on race, religion, political views,
   or any activity protected by the First Amendment, and no sharing of results outside the case.
6. Every action is recorded in a tamper-evident audit trail that supervisors review.
"""

argon2 = lazy("argon2")  # loaded by the commands that hash or check a password, not by every start


@functools.cache
def _hasher():
    """argon2id with the library's current recommended parameters."""
    return argon2.PasswordHasher()


@dataclass(frozen=True)
class Actor:
    """A signed-in user, as commands see them."""

    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


def _user_row(ws: Workspace, name: str):
    return ws.conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()


def _roles(row) -> frozenset[str]:
    return frozenset(json.loads(row["roles"]))


def check_password_strength(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise InputError(f"password is shorter than {MIN_PASSWORD} characters", "choose a longer passphrase")


def _validate_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise InputError(f"unknown role {unknown[0]!r}" if unknown else "no role given",
                         f"use --role with one of: {', '.join(ROLES)}")
    return sorted(set(roles))


def has_users(ws: Workspace) -> bool:
    return ws.conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None


def create_first_admin(ws: Workspace, name: str, password: str) -> Actor:
    """The workspace's first account, an admin. Refused once any account exists."""
    if has_users(ws):
        audit.record(ws.conn, name, "user.create-first-admin", "refused", reason="accounts-exist: accounts already exist")
        raise Refused("this workspace already has accounts", "an admin adds users with `leadmatch user add`",
                      "accounts-exist")
    return _insert_user(ws, "(init)", name, ["admin"], password)


def add_user(ws: Workspace, actor: Actor, name: str, roles: list[str], password: str) -> Actor:
    """Admin: create an account with one or more roles."""
    require(ws, actor, "admin", "user.add", objects={"user": name})
    return _insert_user(ws, actor.name, name, roles, password)


def _insert_user(ws: Workspace, by: str, name: str, roles: list[str], password: str) -> Actor:
    if not NAME_PATTERN.match(name or ""):
        raise InputError(f"user name {name!r} is not allowed", "use 2-64 lower-case letters, digits, '.', '_' or '-'")
    roles = _validate_roles(roles)
    check_password_strength(password)
    with transaction(ws.conn):
        if _user_row(ws, name):
            raise InputError(f"user {name!r} already exists", "choose another name")
        ws.conn.execute("INSERT INTO users (name, password_hash, roles, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                        (name, _hasher().hash(password), json.dumps(roles), utc_now(), by))
        audit.record(ws.conn, by, "user.add", objects={"user": name, "roles": roles})
    return Actor(name, frozenset(roles))


def certify(ws: Workspace, actor: Actor, name: str, course: str, completed: str, expires: str | None = None) -> dict:
    """Admin: record a completed course. Expiry defaults to one year after completion."""
    require(ws, actor, "admin", "user.certify", objects={"user": name})
    get_user(ws, name)
    try:
        done = date.fromisoformat(completed)
        until = date.fromisoformat(expires) if expires else done.replace(year=done.year + 1) \
            if not (done.month == 2 and done.day == 29) else done + timedelta(days=365)
    except ValueError:
        raise InputError("certification dates must be YYYY-MM-DD", "check --completed and --expires") from None
    if done > date.today():
        raise InputError(f"--completed {done} is in the future", "give the date the course was completed")
    if until <= done:
        raise InputError(f"--expires {until} is not after --completed {done}", "give a later expiry")
    if not (course or "").strip():
        raise InputError("--course is empty", f'name the course, e.g. "{DEFAULT_COURSE}"')
    safetext.check_name(course, "--course")
    with transition(ws.conn, Refused):  # the admin's role and the account re-read with the write
        require(ws, actor, "admin", "user.certify", objects={"user": name})
        row = get_user(ws, name)
        ws.conn.execute("INSERT INTO certifications (user_id, course, completed_on, expires_on, recorded_by, "
                        "recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (row["id"], course.strip(), done.isoformat(), until.isoformat(), actor.name, utc_now()))
        audit.record(ws.conn, actor.name, "user.certify", objects={"user": name, "course": course.strip(),
                                                                   "completed": done.isoformat(),
                                                                   "expires": until.isoformat()})
    return {"user": name, "course": course.strip(), "completed": done.isoformat(), "expires": until.isoformat()}


def disable(ws: Workspace, actor: Actor, name: str) -> None:
    """Admin: disable an account at once; its sessions end. The admin's own account is re-read in the same
    transaction, so two admins disabling each other at once cannot both succeed."""
    with transition(ws.conn, Refused):
        require(ws, actor, "admin", "user.disable", objects={"user": name})
        row = get_user(ws, name)
        if name == actor.name:
            audit.record(ws.conn, actor.name, "user.disable", "refused", objects={"user": name},
                         reason="self-disable: an admin cannot disable their own account")
            raise Refused("you cannot disable your own account", "ask another admin", "self-disable")
        if row["disabled_at"]:
            raise refuse(ws, actor, "user.disable", "already-disabled", f"account {name!r} is already disabled",
                         "nothing to do", objects={"user": name})
        ws.conn.execute("UPDATE users SET disabled_at = ? WHERE id = ?", (utc_now(), row["id"]))
        ws.conn.execute("UPDATE sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL",
                        (utc_now(), row["id"]))
        audit.record(ws.conn, actor.name, "user.disable", objects={"user": name})


def grant_role(ws: Workspace, actor: Actor, name: str, role: str) -> dict:
    """Admin: give account `name` another role (audited); every request after it holds the role."""
    return _change_roles(ws, actor, name, role, grant=True)


def revoke_role(ws: Workspace, actor: Actor, name: str, role: str) -> dict:
    """Admin: take a role from account `name` at once (audited). An account keeps at least one role (disable it
    instead), and an admin cannot take away their own admin role, so the workspace never loses its last admin by
    a slip."""
    return _change_roles(ws, actor, name, role, grant=False)


def _change_roles(ws: Workspace, actor: Actor, name: str, role: str, grant: bool) -> dict:
    """The check and the write of a grant or revoke in one transaction; refusals audited. Answers the roles now."""
    action = "user.grant-role" if grant else "user.revoke-role"
    objects = {"user": name, "role": role}
    require(ws, actor, "admin", action, objects=objects)
    if role not in ROLES:
        raise refuse(ws, actor, action, "bad-input", f"there is no role {safetext.shown(role)!r}",
                     f"choose one of: {', '.join(ROLES)}", objects=objects)
    with transition(ws.conn, Refused):  # the admin's role and the account re-read with the write
        require(ws, actor, "admin", action, objects=objects)
        row = get_user(ws, name)
        held = set(_roles(row))
        problem = None
        if grant and row["disabled_at"]:
            problem = ("account-disabled", f"account {name!r} is disabled",
                       "a disabled account keeps its roles unchanged")
        elif grant and role in held:
            problem = ("already-held", f"{name} already has the {role} role", "nothing to change")
        elif not grant and role not in held:
            problem = ("not-held", f"{name} does not have the {role} role", "nothing to change")
        elif not grant and held == {role}:
            problem = ("last-role", f"{role} is {name}'s only role",
                       "grant the account another role first, or disable it")
        elif not grant and role == "admin" and name == actor.name:
            problem = ("self-revoke", "you cannot take away your own admin role", "ask another admin")
        if problem:
            raise refuse(ws, actor, action, problem[0], problem[1], problem[2], objects=objects)
        roles = sorted(held | {role} if grant else held - {role})
        ws.conn.execute("UPDATE users SET roles = ? WHERE id = ?", (json.dumps(roles), row["id"]))
        audit.record(ws.conn, actor.name, action, objects={**objects, "roles": roles})
    return {"user": name, "roles": roles}


def get_user(ws: Workspace, name: str):
    row = _user_row(ws, name)
    if row is None:
        raise NotFound(f"no user named {name!r}", "see `leadmatch user list`")
    return row


def list_users(ws: Workspace, actor: Actor) -> list[dict]:
    """Admin: every account with roles, state and current certification."""
    require(ws, actor, "admin", "user.list")
    return [{"name": r["name"], "roles": sorted(_roles(r)), "disabled": bool(r["disabled_at"]),
             "rules_accepted": r["rules_accepted_at"], "certification": current_certification(ws, r["name"])}
            for r in ws.conn.execute("SELECT * FROM users ORDER BY name")]


def current_certification(ws: Workspace, name: str, on: date | None = None) -> dict | None:
    """The user's certification in force on `on` (today) for the required course, or None."""
    on = (on or date.today()).isoformat()
    row = ws.conn.execute(
        "SELECT c.* FROM certifications c JOIN users u ON u.id = c.user_id WHERE u.name = ? AND c.course = ? "
        "AND c.completed_on <= ? AND c.expires_on >= ? ORDER BY c.expires_on DESC LIMIT 1",
        (name, required_course(ws), on, on)).fetchone()
    return None if row is None else {"course": row["course"], "completed": row["completed_on"],
                                     "expires": row["expires_on"]}


def expiring_certifications(ws: Workspace, actor: Actor, within_days: int = 30, on: date | None = None) -> list[dict]:
    """Admin: active users whose certification for the required course lapses within `within_days` (or has
    lapsed, or was never recorded) and who hold the agent role — soonest first: who must be recertified before
    they can search again."""
    require(ws, actor, "admin", "user.certifications")
    today = on or date.today()
    horizon = (today + timedelta(days=within_days)).isoformat()
    out = []
    for r in ws.conn.execute("SELECT name, roles FROM users WHERE disabled_at IS NULL ORDER BY name"):
        if "agent" not in _roles(r):
            continue
        latest = ws.conn.execute(
            "SELECT max(c.expires_on) FROM certifications c JOIN users u ON u.id = c.user_id "
            "WHERE u.name = ? AND c.course = ?", (r["name"], required_course(ws))).fetchone()[0]
        if latest is None or latest <= horizon:
            state = "never certified" if latest is None else ("lapsed" if latest < today.isoformat() else "expiring")
            out.append({"user": r["name"], "expires": latest, "state": state})
    return sorted(out, key=lambda u: (u["expires"] or ""))


def required_course(ws: Workspace) -> str:
    row = ws.conn.execute("SELECT value FROM settings WHERE key = 'required_course'").fetchone()
    return row[0] if row else DEFAULT_COURSE


def accept_rules(ws: Workspace, actor: Actor) -> str:
    """Record that the user accepted the rules of behavior (once). Returns when."""
    with transaction(ws.conn):  # read and write as one: two parallel acceptances record one
        row = get_user(ws, actor.name)
        if row["rules_accepted_at"]:
            return row["rules_accepted_at"]
        now = utc_now()
        ws.conn.execute("UPDATE users SET rules_accepted_at = ? WHERE id = ?", (now, row["id"]))
        audit.record(ws.conn, actor.name, "user.accept-rules",
                     objects={"rules_sha256": hashlib.sha256(RULES_OF_BEHAVIOR.encode()).hexdigest()})
    return now


# Sessions -----------------------------------------------------------------------------------------------

def login(ws: Workspace, name: str, password: str, hours: int = SESSION_HOURS, *,
          throttle: SignInThrottle | None = None, address: str | None = None,
          peer: str | None = None) -> tuple[str, Actor, str]:
    """Check the password; return (token, actor, expiry). Only the token's sha256 is stored. With a
    `throttle` (the service), failures slow further tries of the name from `address` and, past a larger count,
    of unknown names from `address` (see `signin`); each entry records `address` and the TCP `peer`.
    A name holding control or direction characters (no account can have one) is refused at once, and audited
    with those characters escaped, so it cannot forge a line or an escape sequence in the audit log."""
    where = {"address": address, **({"peer": peer} if peer and peer != address else {})} if address else None
    if not safetext.is_safe_name(name or ""):
        shown = safetext.shown(name)
        audit.record(ws.conn, shown, "login", "refused", objects=where,
                     reason="unsafe-name: the user name holds control or text-direction characters")
        raise Refused(f"user name {shown!r} holds control or text-direction characters",
                      "type your user name again", "bad-credentials")
    throttled = throttle is not None and address is not None
    if throttled:
        with transaction(ws.conn):  # the check and the count as one: parallel guesses cannot slip past it
            delay = throttle.wait(ws.conn, name, address)
            if delay > 0:
                audit.record(ws.conn, name, "login", "refused", objects=where,
                             reason=f"throttled: too many failed sign-ins; next try in {delay:.0f} s")
            else:
                throttle.charge(ws.conn, name, address)
        if delay > 0:
            raise Refused(f"too many failed sign-ins for {name!r} from this address",
                          f"wait {max(1, round(delay))} s and try again, or sign in from another address", "throttled")
    row = _user_row(ws, name)
    ok = False
    if row is not None:
        try:
            ok = _hasher().verify(row["password_hash"], password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            ok = False
    else:
        _hasher().hash(password)  # same work as a real check, so timing does not reveal which names exist
    if not ok:
        audit.record(ws.conn, name, "login", "refused", objects=where,
                     reason="bad-credentials: wrong user name or password")
        raise Refused("wrong user name or password", "try again", "bad-credentials")
    if row["disabled_at"]:
        audit.record(ws.conn, name, "login", "refused", objects=where, reason="disabled: account disabled")
        raise Refused(f"account {name!r} is disabled", "ask an admin", "disabled")
    token = secrets.token_urlsafe(32)
    expires = (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with transaction(ws.conn):
        if throttled:
            throttle.succeeded(ws.conn, name, address)
        ws.conn.execute("INSERT INTO sessions (token_sha256, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                        (_token_hash(token), row["id"], utc_now(), expires))
        audit.record(ws.conn, name, "login", objects={"expires": expires, **(where or {})})
    return token, Actor(name, _roles(row)), expires


def logout(ws: Workspace, token: str) -> str | None:
    """End the session; return the user name it belonged to (None if unknown)."""
    row = ws.conn.execute("SELECT u.name FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?",
                          (_token_hash(token),)).fetchone()
    if row is None:
        return None
    with transaction(ws.conn):
        ws.conn.execute("UPDATE sessions SET ended_at = ? WHERE token_sha256 = ? AND ended_at IS NULL",
                        (utc_now(), _token_hash(token)))
        audit.record(ws.conn, row["name"], "logout")
    return row["name"]


def authenticate(ws: Workspace, token: str | None) -> Actor:
    """The user a session token belongs to, if the session is live and the account enabled."""
    if not token:
        raise Refused("not signed in", "run `leadmatch login NAME`", "not-signed-in")
    row = ws.conn.execute(
        "SELECT s.expires_at, s.ended_at, u.name, u.roles, u.disabled_at FROM sessions s "
        "JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?", (_token_hash(token),)).fetchone()
    if row is None:
        raise Refused("your session has ended", "run `leadmatch login NAME`", "not-signed-in")
    if row["ended_at"]:  # a known user's ended session (logged out, or the account disabled): audited
        why = "disabled: account disabled; session ended" if row["disabled_at"] else "session-ended: session ended"
        audit.record(ws.conn, row["name"], "session", "refused", reason=why)
        raise Refused("your session has ended", "run `leadmatch login NAME`", "not-signed-in")
    if row["disabled_at"]:
        audit.record(ws.conn, row["name"], "session", "refused", reason="disabled: account disabled")
        raise Refused(f"account {row['name']!r} is disabled", "ask an admin", "disabled")
    if row["expires_at"] < utc_now():
        audit.record(ws.conn, row["name"], "session", "refused", reason="session-expired: session expired")
        raise Refused("your session has expired", "run `leadmatch login NAME` again", "session-expired")
    return Actor(row["name"], _roles(row))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# The gate ---------------------------------------------------------------------------------------------

def refuse(ws: Workspace, actor: Actor | str, action: str, reason: str, message: str, hint: str, *,
           case: str | None = None, search_id: str | None = None, objects: dict | None = None,
           photos: list[str] | tuple = ()) -> Refused:
    """Audit a refusal and return the exception for the caller to raise."""
    name = actor.name if isinstance(actor, Actor) else actor
    audit.record(ws.conn, name, action, "refused", case=case, search_id=search_id, objects=objects,
                 reason=f"{reason}: {message}", photos=photos)
    return Refused(message, hint, reason)


def require(ws: Workspace, actor: Actor, role: str | tuple[str, ...], action: str, **context) -> Actor:
    """Allow `actor` to do `action` only if the account is enabled and holds `role` (or one of them)."""
    roles = (role,) if isinstance(role, str) else role
    row = _user_row(ws, actor.name)
    if row is None or row["disabled_at"]:
        raise refuse(ws, actor, action, "disabled", f"account {actor.name!r} is disabled or gone", "ask an admin",
                     **context)
    held = _roles(row)
    if not held.intersection(roles):
        raise refuse(ws, actor, action, "wrong-role",
                     f"{action} needs the {' or '.join(roles)} role; {actor.name} has {', '.join(sorted(held))}",
                     "ask an admin for the role, or sign in as a user who has it", **context)
    return Actor(actor.name, held)


def require_search_ready(ws: Workspace, actor: Actor, case: str | None) -> None:
    """An agent may search only with current certification and accepted rules of behavior."""
    row = get_user(ws, actor.name)
    if not row["rules_accepted_at"]:
        raise refuse(ws, actor, "search", "rules-not-accepted", f"{actor.name} has not accepted the rules of behavior",
                     "run `leadmatch accept-rules`", case=case)
    if current_certification(ws, actor.name) is None:
        last = ws.conn.execute("SELECT c.expires_on FROM certifications c WHERE c.user_id = ? AND c.course = ? "
                               "ORDER BY c.expires_on DESC LIMIT 1", (row["id"], required_course(ws))).fetchone()
        if last is None:
            raise refuse(ws, actor, "search", "uncertified",
                         f"{actor.name} has no certification for \"{required_course(ws)}\"",
                         "complete the course; an admin records it with `leadmatch user certify`", case=case)
        raise refuse(ws, actor, "search", "certification-expired",
                     f"{actor.name}'s certification for \"{required_course(ws)}\" expired on {last[0]}",
                     "renew it; an admin records it with `leadmatch user certify`", case=case)
