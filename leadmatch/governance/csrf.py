"""Forms signed to their session: a cookie-session form is taken only with its session's CSRF token (an HMAC
of the session token under a secret the record keeps); a form without one is refused and audited."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from leadmatch.errors import Refused
from leadmatch.governance.accounts import Actor
from leadmatch.record import audit
from leadmatch.record.store import transaction
from leadmatch.record.workspace import Workspace


def token_for(ws: Workspace, session_token: str | None) -> str:
    """The CSRF token of a session."""
    return hmac.new(_secret(ws), (session_token or "").encode(), hashlib.sha256).hexdigest()


def check(ws: Workspace, actor: Actor, sent: str, expected: str, path: str) -> None:
    """Refuse (audited) a form whose CSRF token is not its session's."""
    if not hmac.compare_digest(sent, expected):
        audit.record(ws.conn, actor.name, "web.form", "refused", objects={"path": path},
                     reason="csrf: form without a valid CSRF token")
        raise Refused("this form has no valid CSRF token", "reload the page and try again", "csrf")


def _secret(ws: Workspace) -> bytes:
    row = ws.conn.execute("SELECT value FROM settings WHERE key = 'csrf_secret'").fetchone()
    if row:
        return bytes.fromhex(row[0])
    with transaction(ws.conn):
        ws.conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('csrf_secret', ?)",
                        (secrets.token_hex(32),))
    return _secret(ws)
