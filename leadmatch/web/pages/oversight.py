"""The auditor's pages: the audit trail a page at a time (newest first, filtered, each entry naming its objects)
with the chain check, filing a checkpoint (downloaded as the file `audit checkpoint --out` writes), and the
supervisors' report as a page with its CSV and JSON downloads."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from leadmatch.errors import LeadmatchError
from leadmatch.operations import oversight
from leadmatch.web import forms, wording
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser
from leadmatch.web.downloads import audit_report_response, checkpoint_response
from leadmatch.web.responses import page, status_of

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit_page(actor: PageUser, ws: OpenWorkspace, request: Request, case: str = "", user: str = "",
               action: str = "", outcome: str = "", since: str = "", until: str = "",
               number: str = Query("1", alias="page"), upto: str = ""):
    """The trail, newest first, one page of entries matching the filters (the trail as it was when the reader
    started paging: `upto`); the chain verified above it."""
    given = {"case": case, "user": user, "since": since, "until": until, "action": action, "outcome": outcome}
    try:
        listing = oversight.log_page(ws, actor, case, user, since, until, action, outcome,
                                     forms.whole_number(number, "page", 1, 1_000_000),
                                     upto=forms.optional_number(upto, "entry", 0, 10**15))
    except LeadmatchError as exc:  # a filter that cannot be read: the form again, as typed, the field marked
        if status_of(exc) in (401, 403):
            raise
        message, field = wording.in_page_words(exc)
        nothing = {"entries": [], "total": 0, "page": 1, "pages": 1, "upto": None, "newer": 0,
                   "choices": oversight.log_page(ws, actor, per_page=1)["choices"]}
        return page(request, "audit", status_of(exc), log=nothing, check=oversight.verify(ws, actor),
                    filters=given, may_checkpoint="auditor" in actor.roles,
                    problem={"message": message, "field": field})
    check = oversight.verify(ws, actor)
    return page(request, "audit", log=listing, check=check, filters=listing["filters"],
                may_checkpoint="auditor" in actor.roles, problem={})


@router.post("/audit/checkpoint")
def audit_checkpoint(actor: FormUser, ws: OpenWorkspace) -> Response:
    """Auditor: file a checkpoint; the browser saves it (file it outside this system)."""
    return checkpoint_response(oversight.checkpoint(ws, actor))


@router.get("/audit/supervisors", response_class=HTMLResponse)
def supervisors_report(actor: PageUser, ws: OpenWorkspace, request: Request, start: str = "", end: str = "",
                       stale_days: str = "30"):
    """The supervisors' report for a period (this month so far unless chosen), as `audit report` gives it."""
    first, last = oversight.report_period(start, end)
    days = forms.whole_number(stale_days, "stale days", 1, 36_500)
    data = oversight.report(ws, actor, first, last, days)
    return page(request, "audit_report", report=data, start=first, end=last, stale_days=days)


@router.get("/audit/report")
def audit_report(actor: PageUser, ws: OpenWorkspace, start: str = "", end: str = "", format: str = "csv",
                 stale_days: int = 30):
    return audit_report_response(ws, actor, start, end, format, stale_days)
