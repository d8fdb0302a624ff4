"""Errors a user sees: one line saying what is wrong and what to do.

Every error carries an exit code so the CLI can report it without a traceback.
`Refused` marks a policy refusal: the library audits it before raising. An error may name the request `field`
it concerns (`"justification"`, `"track"`), so a form can mark that field and word the message its own way.
"""

from __future__ import annotations

from contextlib import contextmanager


class LeadmatchError(Exception):
    """Base error: `message` names what is wrong, `hint` what to do about it, `field` (None when it is no one
    field's fault) the request field it concerns, by its SearchRequest-style name."""

    exit_code = 1
    field: str | None = None

    def __init__(self, message: str, hint: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class InputError(LeadmatchError):
    """A file, option or value given by the user cannot be used."""


class PhotoError(InputError):
    """A photo cannot be read or does not hold a usable face."""

    def __init__(self, message: str, hint: str = "", reason: str = "unreadable", field: str | None = None) -> None:
        super().__init__(message, hint, field)
        self.reason = reason


class WorkspaceError(LeadmatchError):
    """The workspace is missing, or not in the state the command needs."""


class DiskFull(WorkspaceError):
    """A write found no room on the disk: nothing was half written; free space and try again."""

    exit_code = 75  # EX_TEMPFAIL: the same command works once there is room

    def __init__(self, message: str = "the disk holding the workspace is full",
                 hint: str = "free space on it and try again; nothing was half written") -> None:
        super().__init__(message, hint)


class NotFound(LeadmatchError):
    """A named gallery, subject, search or user does not exist."""


class Refused(LeadmatchError):
    """An action the rules forbid. Always audited before it is raised."""

    exit_code = 3

    def __init__(self, message: str, hint: str = "", reason: str = "refused", field: str | None = None) -> None:
        super().__init__(message, hint, field)
        self.reason = reason


class FaceChoiceNeeded(LeadmatchError):
    """The probe holds several faces and the agent has not picked one."""

    exit_code = 4

    def __init__(self, message: str, hint: str, faces: list, field: str | None = None) -> None:
        super().__init__(message, hint, field)
        self.faces = faces


class ModelError(LeadmatchError):
    """The model weights are missing or do not match the model card."""

    exit_code = 5


@contextmanager
def concerning(field: str):
    """Within this block, a leadmatch error that names no field is said to concern `field` (a request field)."""
    try:
        yield
    except LeadmatchError as exc:
        if exc.field is None:
            exc.field = field
        raise
