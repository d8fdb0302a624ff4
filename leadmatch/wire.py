"""The error wire format shared by the service and its clients: a leadmatch error as plain data and back.

Exceptions do not cross a process pool or an HTTP response intact (a `FaceChoiceNeeded` needs its faces, a
`Refused` its reason), so both sides agree on this dict: kind, message, hint, reason, exit_code, faces, and the request field it
concerns (`field`, None for most).
"""

from __future__ import annotations

from leadmatch import errors
from leadmatch.errors import FaceChoiceNeeded, LeadmatchError, PhotoError, Refused

KINDS = {cls.__name__: cls for cls in (LeadmatchError, errors.InputError, PhotoError, errors.WorkspaceError,
                                       errors.DiskFull,
                                       errors.NotFound, Refused, FaceChoiceNeeded, errors.ModelError)}


def error_to_dict(exc: LeadmatchError) -> dict:
    """A leadmatch error as plain data (JSON- and pickle-safe)."""
    return {"kind": type(exc).__name__ if type(exc).__name__ in KINDS else "LeadmatchError",
            "message": exc.message, "hint": exc.hint, "reason": getattr(exc, "reason", None),
            "exit_code": exc.exit_code, "faces": getattr(exc, "faces", None), "field": exc.field}


def error_from_dict(data: dict) -> LeadmatchError:
    """The exception `error_to_dict` described, ready to raise (same class, message, hint, exit code)."""
    cls = KINDS.get(data.get("kind"), LeadmatchError)
    message, hint = str(data.get("message", "")), str(data.get("hint") or "")
    if cls is FaceChoiceNeeded:
        exc = FaceChoiceNeeded(message, hint, data.get("faces") or [])
    elif cls in (Refused, PhotoError):
        exc = cls(message, hint, data.get("reason") or ("refused" if cls is Refused else "unreadable"))
    else:
        exc = cls(message, hint)
    field = data.get("field")
    exc.field = field if isinstance(field, str) and field else None
    if isinstance(data.get("exit_code"), int) and data["exit_code"] != exc.exit_code:
        exc.exit_code = data["exit_code"]
    return exc
