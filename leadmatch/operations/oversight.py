"""The audit trail for auditors and admins — verify, checkpoint, log, the supervisors' report — and retention."""

from __future__ import annotations

from leadmatch.casemedia import media
from leadmatch.governance import oversight
from leadmatch.governance.accounts import Actor
from leadmatch.errors import InputError
from leadmatch.record import audit
from leadmatch.record.store import utc_now
from leadmatch.record.workspace import Workspace

REPORT_FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def verify(ws: Workspace, actor: Actor, expect_head: str | None = None, checkpoint: dict | None = None) -> dict:
    """Walk the keyed chain (and prove nothing changed behind a head hash or a filed checkpoint); the answer
    says `ok`, and where and how it breaks if not (`description`)."""
    result = oversight.verify(ws, actor, expect_head, checkpoint)
    return {**result.__dict__, "description": None if result.ok else result.describe()}


def checkpoint(ws: Workspace, actor: Actor) -> dict:
    """Auditor: the signed head of the trail, for the caller to file outside the system."""
    return oversight.checkpoint(ws, actor)


def log(ws: Workspace, actor: Actor, case: str | None = None, user: str | None = None, since: str | None = None,
        limit: int | None = None, action: str | None = None, outcome: str | None = None,
        until: str | None = None) -> list[dict]:
    """The entries matching the filters, oldest first (with `limit`, the newest `limit`); audited."""
    if limit is not None and limit < 1:
        raise InputError("the entry limit must be at least 1", "give a positive number")
    return oversight.log(ws, actor, case or None, user or None, since or None, limit, action=action or None,
                         outcome=outcome or None, until=until or None)


def log_page(ws: Workspace, actor: Actor, case: str | None = None, user: str | None = None,
             since: str | None = None, until: str | None = None, action: str | None = None,
             outcome: str | None = None, page: int = 1, per_page: int = audit.PER_PAGE,
             upto: int | None = None) -> dict:
    """One page of the entries matching the filters, newest first, each naming its objects (the pages of the
    trail up to entry `upto`, its head now if not given); audited."""
    return oversight.log_page(ws, actor, case, user, since, until, action, outcome, page, per_page, upto)


def report(ws: Workspace, actor: Actor, start: str, end: str, stale_days: int = 30) -> dict:
    return oversight.report(ws, actor, start, end, stale_days)


def report_period(start: str = "", end: str = "") -> tuple[str, str]:
    """The report's period as given, or by default this month so far (the service's UTC date)."""
    today = utc_now()[:10]
    return (start or today[:8] + "01"), (end or today)


def checkpoint_file(made: dict) -> tuple[str, str]:
    """(file name, text) of a checkpoint, exactly as `audit checkpoint --out` and the service's schedule file it."""
    return oversight.checkpoint_file_name(made), oversight.checkpoint_text(made)


def report_format(fmt: str) -> str:
    """The media type of a report format, or InputError naming the ones there are."""
    if fmt not in REPORT_FORMATS:
        raise InputError(f"report format {fmt!r} is not supported", "use csv or json")
    return REPORT_FORMATS[fmt]


def report_csv(data: dict) -> str:
    return audit.report_csv(data)


def purge_expired(ws: Workspace, actor: Actor) -> dict:
    """Admin: closed searches past their gallery's retention lose their probe photos and details, then the media
    of cases with nothing left to keep (audited)."""
    return media.purge_expired(ws, actor)


def purge_preview(ws: Workspace, actor: Actor) -> dict:
    """Admin: what `purge_expired` would purge now (searches and case media, counted), nothing deleted; the
    preview is audited."""
    return media.purge_preview(ws, actor)
