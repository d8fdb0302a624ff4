"""What the pages and the API both send as files: face crops (PNG), the lead report, the supervisors' audit
report (producing either report is audited by the library) and a filed checkpoint."""

from __future__ import annotations

import json

from fastapi.responses import HTMLResponse, Response

from leadmatch.governance.accounts import Actor
from leadmatch.operations import oversight, searches
from leadmatch.record.workspace import Workspace


def png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, no-store"})


def report_response(ws: Workspace, actor: Actor, search_id: str) -> HTMLResponse:
    """The lead report as a download (producing it is audited by the library)."""
    return HTMLResponse(searches.report_html(ws, actor, search_id), headers={
        "Content-Disposition": f'attachment; filename="lead-report-{search_id}.html"'})


def checkpoint_response(made: dict) -> Response:
    """A checkpoint as the file the CLI writes (`audit checkpoint --out`), for the browser to save."""
    name, text = oversight.checkpoint_file(made)
    return Response(text, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


def audit_report_response(ws: Workspace, actor: Actor, start: str, end: str, format: str,
                          stale_days: int = 30) -> Response:
    media_type = oversight.report_format(format)
    data = oversight.report(ws, actor, start, end, stale_days)
    body = oversight.report_csv(data) if format == "csv" else json.dumps(data, indent=2)
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="audit-report-{start}-{end}.{format}"'})
