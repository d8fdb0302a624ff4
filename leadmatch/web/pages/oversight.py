"""The auditor's pages: the audit trail with its chain check, and the supervisors' report download."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from leadmatch.operations import oversight
from leadmatch.web.deps import OpenWorkspace, PageUser
from leadmatch.web.downloads import audit_report_response
from leadmatch.web.responses import page

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit_page(actor: PageUser, ws: OpenWorkspace, request: Request, case: str = "", user: str = "", since: str = ""):
    rows = oversight.log(ws, actor, case or None, user or None, since or None, limit=500)
    check = oversight.verify(ws, actor)
    return page(request, "audit", rows=rows, check=check, case=case, user_filter=user, since=since)


@router.get("/audit/report")
def audit_report(actor: PageUser, ws: OpenWorkspace, start: str = "", end: str = "", format: str = "csv"):
    return audit_report_response(ws, actor, start, end, format)
